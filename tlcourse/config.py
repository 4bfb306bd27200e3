"""Profiles, seeding and device choice: the first cell of every chapter calls :func:`setup`.

A *profile* names how big a chapter's experiments are. ``cpu`` is what CI runs (each chapter
in at most five minutes on two cores); ``gpu`` uses bigger models, more data and more steps.
Each chapter module keeps one small config object per profile and picks it with
:meth:`Run.select`, so that no size is hidden in a notebook cell (see CONVENTIONS.md).
"""

from __future__ import annotations

import os
import platform
import random
import warnings
from dataclasses import dataclass
from typing import Callable, Mapping, TypeVar

import numpy as np
import torch

PROFILES: tuple[str, ...] = ("cpu", "gpu")
ENV_PROFILE = "TLCOURSE_PROFILE"
# A smoke run (tests/test_smoke.py): the chosen profile's code paths with every size shrunk by the
# chapter's ``Profiles.smoke``: the gpu profile's branches on a CPU, one to three minutes a chapter.
ENV_SMOKE = "TLCOURSE_SMOKE"

T = TypeVar("T")


class ConfigError(ValueError):
    """A profile or config name that does not exist; the message lists the valid ones."""


def profile_name(name: str | None = None) -> str:
    """The active profile: ``name`` if given, else ``$TLCOURSE_PROFILE``, else ``gpu`` when CUDA
    works."""
    chosen = name or os.environ.get(ENV_PROFILE, "").strip()
    if not chosen:
        return "gpu" if torch.cuda.is_available() else "cpu"
    chosen = chosen.lower()
    if chosen not in PROFILES:
        source = "argument profile=" if name else f"environment variable {ENV_PROFILE}="
        raise ConfigError(
            f"Unknown profile {chosen!r} (from {source}{chosen!r}). "
            f"Valid profiles: {', '.join(PROFILES)}. Unset {ENV_PROFILE} to choose automatically."
        )
    return chosen


def pick_device(profile: str) -> torch.device:
    """CUDA, then Apple's MPS, then the CPU; the ``cpu`` profile keeps small models on the CPU."""
    if torch.cuda.is_available() and profile == "gpu":
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if profile == "gpu" and mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices) so that a chapter gives the same numbers twice."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def smoke_run() -> bool:
    """Whether ``$TLCOURSE_SMOKE`` asks for a smoke run (``1``, ``true`` or ``yes``)."""
    return os.environ.get(ENV_SMOKE, "").strip().lower() in ("1", "true", "yes")


class Profiles(dict):
    """A chapter's config per profile (``{"cpu": ..., "gpu": ...}``), and ``smoke``: the function
    that shrinks one of them to a few steps and a few rows for a smoke run, keeping every switch
    (which models, which methods, which branches) as the profile has it."""

    def __init__(self, configs: Mapping[str, T], smoke: Callable[[T], T]):
        super().__init__(configs)
        self.smoke = smoke


def select(
    configs: Mapping[str, T],
    profile: str | None = None,
    what: str = "config",
    smoke: bool | None = None,
) -> T:
    """Pick the entry of ``configs`` for ``profile`` (the active one by default), with a clear
    error; in a smoke run (``smoke``, default ``$TLCOURSE_SMOKE``) shrunk by ``configs.smoke``."""
    name = profile_name(profile)
    if name not in configs:
        raise ConfigError(
            f"No {what} for profile {name!r}; this chapter defines: {', '.join(configs)}."
        )
    if not (smoke_run() if smoke is None else smoke):
        return configs[name]
    shrink = getattr(configs, "smoke", None)
    if shrink is None:
        raise ConfigError(
            f"A smoke run ({ENV_SMOKE}=1) needs the chapter's smoke sizes, and this {what} has "
            f"none: make it a tlcourse.config.Profiles(..., smoke=...), or unset {ENV_SMOKE}."
        )
    return shrink(configs[name])


@dataclass(frozen=True)
class Run:
    """What :func:`setup` decided: the profile, the device and the seed."""

    profile: str
    device: torch.device
    seed: int
    smoke: bool = False  # every size shrunk (``$TLCOURSE_SMOKE``): the numbers mean nothing

    def select(self, configs: Mapping[str, T], what: str = "config") -> T:
        """This run's entry of a chapter's per-profile configs (``CONFIGS[run.profile]``,
        checked), shrunk in a smoke run."""
        return select(configs, self.profile, what, smoke=self.smoke)


def quiet_libraries() -> None:
    """Keep the libraries' own chatter (weight-loading reports and bars) out of the chapters'
    output.

    The chapters show their own progress bars (``tqdm.auto``) and assert what the reports say.
    """
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    # EncoderDecoderModel warns on every call with labels that its loss changed in transformers 4.12
    warnings.filterwarnings("ignore", message="Version v4.12.0 introduces", category=FutureWarning)


def setup(seed: int = 0, profile: str | None = None, verbose: bool = True) -> Run:
    """Seed everything, choose the profile and device, print what was chosen, and return it.

    Every chapter's setup cell calls this once; the printed lines make a run's numbers traceable
    (profile, device, library versions, data directory).
    """
    name = profile_name(profile)
    quiet_libraries()
    seed_everything(seed)
    device = pick_device(name)
    run = Run(profile=name, device=device, seed=seed, smoke=smoke_run())
    if verbose:
        print(describe(run))
    return run


def describe(run: Run) -> str:
    from . import __version__, data  # local import: data imports this module

    import transformers

    lines = [
        f"tlcourse {__version__} | profile {run.profile} | device {run.device} | seed {run.seed}",
        f"python {platform.python_version()} | torch {torch.__version__} | "
        f"transformers {transformers.__version__} | threads {torch.get_num_threads()}",
        f"data directory: {data.describe_data_dir()}",
    ]
    if run.profile == "gpu" and run.device.type == "cpu":
        lines.append(
            "note: no CUDA/MPS device found; the gpu profile's sizes will run slowly on the CPU"
        )
    if run.smoke:
        lines.append(
            f"smoke run ({ENV_SMOKE}): every size shrunk to a few steps; the numbers mean nothing"
        )
    return "\n".join(lines)
