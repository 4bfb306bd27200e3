"""tlcourse.config: profile selection, seeding, device choice, per-profile configs."""
import random

import numpy as np
import pytest
import torch

import tlcourse
from tlcourse import config
from tlcourse.config import ConfigError


def test_profile_from_environment(monkeypatch):
    monkeypatch.delenv("TLCOURSE_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert config.profile_name() == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert config.profile_name() == "gpu"
    monkeypatch.setenv("TLCOURSE_PROFILE", " CPU ")
    assert config.profile_name() == "cpu"
    assert config.profile_name("gpu") == "gpu"  # an explicit argument wins over the environment


def test_unknown_profile_names_the_valid_ones(monkeypatch):
    monkeypatch.setenv("TLCOURSE_PROFILE", "tpu")
    with pytest.raises(ConfigError) as info:
        config.profile_name()
    message = str(info.value)
    assert "'tpu'" in message and "TLCOURSE_PROFILE" in message and "cpu, gpu" in message
    with pytest.raises(ConfigError, match="argument profile="):
        tlcourse.setup(profile="fast", verbose=False)


def test_setup_seeds_everything_and_reports(monkeypatch, capsys):
    monkeypatch.setenv("TLCOURSE_PROFILE", "cpu")
    run = tlcourse.setup(seed=3)
    first = (random.random(), np.random.rand(), torch.rand(2))
    again = tlcourse.setup(seed=3, verbose=False)
    second = (random.random(), np.random.rand(), torch.rand(2))
    assert first[:2] == second[:2] and torch.equal(first[2], second[2])
    assert run == again and run.profile == "cpu" and run.device == torch.device("cpu") and run.seed == 3
    out = capsys.readouterr().out
    assert "profile cpu" in out and "seed 3" in out and "torch " in out and "data directory:" in out


def test_gpu_profile_without_a_gpu_says_so(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run = tlcourse.setup(profile="gpu")
    assert run.device.type in ("cpu", "mps")
    if run.device.type == "cpu":
        assert "no CUDA/MPS device" in capsys.readouterr().out


def test_select_per_profile_config(monkeypatch):
    monkeypatch.delenv("TLCOURSE_SMOKE", raising=False)
    configs = {"cpu": {"steps": 10}, "gpu": {"steps": 1000}}
    monkeypatch.setenv("TLCOURSE_PROFILE", "gpu")
    assert config.select(configs) == {"steps": 1000}
    run = config.Run("cpu", torch.device("cpu"), 0)
    assert run.select(configs) == {"steps": 10}
    with pytest.raises(ConfigError, match="No config for profile 'gpu'; this chapter defines: cpu"):
        config.select({"cpu": 1}, "gpu")


def test_smoke_run_shrinks_the_profile_with_the_chapters_function(monkeypatch, capsys):
    configs = config.Profiles({"cpu": {"steps": 10}, "gpu": {"steps": 1000}}, smoke=lambda c: {**c, "steps": 2})
    monkeypatch.delenv("TLCOURSE_SMOKE", raising=False)
    assert config.select(configs, "gpu") == {"steps": 1000}
    monkeypatch.setenv("TLCOURSE_SMOKE", "1")
    assert config.select(configs, "gpu") == {"steps": 2} and configs["gpu"] == {"steps": 1000}
    assert config.select(configs, "gpu", smoke=False) == {"steps": 1000}
    run = tlcourse.setup(profile="gpu")
    assert run.smoke and run.select(configs) == {"steps": 2}
    assert "smoke run (TLCOURSE_SMOKE)" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="needs the chapter's smoke sizes"):
        config.select({"cpu": 1}, "cpu")  # a plain dict has none


def _leaves(cfg, prefix=""):
    """(name, value) for every field of a (nested) config dataclass."""
    import dataclasses
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            yield from _leaves(value, prefix + f.name + ".")
        else:
            yield prefix + f.name, value


@pytest.mark.parametrize("module", [f"ch{n:02d}" for n in range(1, 12)])
def test_every_chapters_smoke_sizes_keep_the_profiles_switches(module):
    import importlib
    import pkgutil

    import tlcourse.chapters as chapters
    name = next(m.name for m in pkgutil.iter_modules(chapters.__path__) if m.name.startswith(module + "_"))
    ch = importlib.import_module(f"tlcourse.chapters.{name}")
    assert isinstance(ch.CONFIGS, config.Profiles), f"{name}.CONFIGS has no smoke sizes"
    for profile, cfg in ch.CONFIGS.items():
        small = ch.CONFIGS.smoke(cfg)
        assert type(small) is type(cfg) and small != cfg, (name, profile)
        full, shrunk = dict(_leaves(cfg)), dict(_leaves(small))
        # the switches (which model, which methods, on or off) are the profile's own
        switches = {k for k, v in full.items() if isinstance(v, (bool, str)) or k in ("strategies", "ranks", "runs")}
        assert {k: shrunk[k] for k in switches} == {k: full[k] for k in switches}, (name, profile)
        # and nothing grows: every number is at most the profile's
        for k, v in full.items():
            if isinstance(v, int) and not isinstance(v, bool) and isinstance(shrunk[k], int) and v > 0:
                assert shrunk[k] <= v, (name, profile, k)
