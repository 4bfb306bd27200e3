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
    configs = {"cpu": {"steps": 10}, "gpu": {"steps": 1000}}
    monkeypatch.setenv("TLCOURSE_PROFILE", "gpu")
    assert config.select(configs) == {"steps": 1000}
    run = config.Run("cpu", torch.device("cpu"), 0)
    assert run.select(configs) == {"steps": 10}
    with pytest.raises(ConfigError, match="No config for profile 'gpu'; this chapter defines: cpu"):
        config.select({"cpu": 1}, "gpu")
