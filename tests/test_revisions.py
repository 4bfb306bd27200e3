"""Every Hugging Face hub source the course still uses names the commit it was written against, or
says why it does not; and the loaders pass that revision through to the hub."""
import re

import datasets
import pytest

from tlcourse import data, hub
from tlcourse.data import _hub
from tlcourse.data.ud import TREEBANKS, ud_hub

SHA = re.compile(r"^[0-9a-f]{40}$")


def _hub_sources() -> dict[str, _hub.HubSource]:
    sources = {f"registry:{name}": entry.hub for name, entry in data.REGISTRY.items()}
    for treebank in TREEBANKS:
        sources[f"ud:{treebank}"] = ud_hub(treebank)
    return {name: source for name, source in sources.items() if source.repo is not None}


HUB_SOURCES = _hub_sources()


def test_there_are_hub_sources_to_check():
    assert len(HUB_SOURCES) >= 5


@pytest.mark.parametrize("name", sorted(HUB_SOURCES))
def test_every_dataset_source_is_pinned_or_says_why(name):
    source = HUB_SOURCES[name]
    if source.revision is not None and SHA.match(source.revision):
        assert not source.unpinned, f"{name}: pinned, yet says it is unpinned"
    else:
        assert len(source.unpinned) > 20, f"{name}: no commit pinned and no reason given"


@pytest.mark.parametrize("name", sorted(hub.MODELS))
def test_every_model_is_pinned_or_says_why(name):
    spec = hub.MODELS[name]
    if spec.revision is not None:
        assert SHA.match(spec.revision) and not spec.unpinned, name
    else:
        assert len(spec.unpinned) > 20, f"{name}: no commit pinned and no reason given"


def test_fetch_passes_the_revision_to_load_dataset(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("TLCOURSE_CACHE", str(tmp_path / "cache"))
    seen = {}

    def load_dataset(repo, config, **kwargs):
        seen.update(repo=repo, config=config, **kwargs)
        return "loaded"

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    source = data.REGISTRY["wikitext2"].hub
    assert SHA.match(source.revision)
    assert _hub.fetch("t", ["missing.txt"], source, data_dir=tmp_path) == "loaded"
    assert seen["repo"] == source.repo and seen["revision"] == source.revision
    assert source.revision in source.describe()
