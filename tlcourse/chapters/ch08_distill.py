"""Chapter 8: the experiments — a MiniLM teacher fine-tuned on AG News (four topics), students
trained on the labels, on the teacher's answers or on its full distribution (several seeds each),
the teacher as a labelling function for articles without labels, and the deployment table.

* :class:`DistillChapterConfig` / :data:`CONFIGS`: the chapter's sizes per profile;
* :func:`splits` gives the labelled, unlabelled and test articles, encoded once;
* :func:`teacher` fine-tunes (or loads from the cache) the teacher and adds its logits to every
  split;
* :func:`make_student` builds a student by name; :func:`student_runs` trains one per condition
  and seed; :func:`deployment_table` measures them all.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch

from ..config import Profiles
from .. import data, hub
from ..distill import (
    TEACHER,
    bag_student,
    distil,
    layer_subset_student,
    logits_of,
    remap,
    throughput,
    trim_vocabulary,
)
from ..finetune import FinetuneConfig, encode, evaluate, finetune_classifier
from ..train import parameter_counts, progress_bar, seeded
from ..viz import paired_effect

TOPICS = ("World", "Sports", "Business", "Sci/Tech")


@dataclass(frozen=True)
class DistillChapterConfig:
    """Sizes of chapter 8 for one profile."""

    labelled: int = 2000  # AG News training articles with labels (class-balanced subset)
    unlabelled: int = 4000  # further AG News training articles, their labels dropped
    test: int | None = 1000  # AG News test articles (class-balanced; None: all 7,600)
    teacher: FinetuneConfig = field(
        default_factory=lambda: FinetuneConfig(
            epochs=1.0, min_steps=10, max_steps=10_000, batch=32, lr=1e-4, max_len=64
        )
    )
    half_layers: tuple[int, ...] = (0, 2, 4)  # DistilBERT: every other layer of the teacher
    half: FinetuneConfig = field(
        default_factory=lambda: FinetuneConfig(
            epochs=1.0, min_steps=10, max_steps=10_000, batch=32, lr=1e-4, max_len=64
        )
    )
    bag_dim: int = 256  # the bag of word pieces: embedding and hidden width
    bag: FinetuneConfig = field(
        default_factory=lambda: FinetuneConfig(
            epochs=7.0, min_steps=10, max_steps=10_000, batch=32, lr=3e-3, max_len=64
        )
    )
    seeds: int = 5  # every condition of the bag is trained with this many seeds (paired)
    alpha: float = 0.5  # the half student's mix of labels and soft targets
    cosine: float = 1.0  # the half student's weight of DistilBERT's cosine loss on hidden states
    tau: float = 2.0
    throughput_batch: int = 64


def smoke(cfg: DistillChapterConfig) -> DistillChapterConfig:
    """``cfg`` shrunk for a smoke run (``TLCOURSE_SMOKE=1``): a few steps and rows, the same
    switches and code paths."""
    quick = dict(epochs=1.0, min_steps=2, max_steps=3)
    return replace(
        cfg,
        labelled=200,
        unlabelled=200,
        test=200,
        teacher=replace(cfg.teacher, **quick),
        half=replace(cfg.half, **quick),
        bag=replace(cfg.bag, **quick),
        seeds=2,
    )


CONFIGS = Profiles(
    {
        "cpu": DistillChapterConfig(),
        "gpu": DistillChapterConfig(
            labelled=4000,
            unlabelled=6001,  # the rest of the 10,001 training articles
            test=None,
            teacher=FinetuneConfig(
                epochs=2.0, min_steps=10, max_steps=10_000, batch=32, lr=5e-5, max_len=128
            ),
            half=FinetuneConfig(
                epochs=2.0, min_steps=10, max_steps=10_000, batch=32, lr=1e-4, max_len=128
            ),
            bag=FinetuneConfig(
                epochs=10.0, min_steps=10, max_steps=10_000, batch=32, lr=3e-3, max_len=128
            ),
            seeds=10,
        ),
    },
    smoke=smoke,
)


def splits(cfg: DistillChapterConfig, tokenizer) -> dict[str, dict[str, torch.Tensor]]:
    """Encoded AG News articles: ``labelled`` (training articles, class-balanced),
    ``unlabelled`` (other training articles; their labels are kept only to measure the teacher,
    never trained on) and ``test`` (the official test split, class-balanced)."""
    ag = data.load_ag_news()
    train = ag["train"]
    rows = data.label_budget_indices(np.asarray(train["label"]), [cfg.labelled], seed=0)[
        cfg.labelled
    ]
    rest = np.setdiff1d(np.arange(len(train)), rows)
    if cfg.unlabelled > len(rest):
        raise ValueError(
            f"splits: {cfg.unlabelled} unlabelled articles asked for, but only {len(rest)} "
            f"training articles are left after the {cfg.labelled} labelled ones."
        )
    unlabelled = train.select(np.random.default_rng(1).permutation(rest)[: cfg.unlabelled].tolist())
    test = ag["test"] if cfg.test is None else data.budget_subset(ag["test"], cfg.test, seed=0)
    parts = {
        "labelled": train.select(sorted(rows.tolist())),
        "unlabelled": unlabelled,
        "test": test,
    }
    return {
        name: encode(tokenizer, ds, ["text"], cfg.teacher.max_len) for name, ds in parts.items()
    }


def teacher(cfg: DistillChapterConfig, encoded: dict, device="cpu") -> tuple[torch.nn.Module, dict]:
    """MiniLM fine-tuned on the labelled articles (or loaded from the cache); adds its logits to
    every split as column ``teacher_logits``. Returns the model and
    ``{"accuracy", "seconds", "loss"}``."""
    from transformers import AutoModelForSequenceClassification

    def build():
        return hub.load_model("minilm", AutoModelForSequenceClassification, num_labels=len(TOPICS))

    def train(model):
        began = time.perf_counter()
        accuracy, losses = finetune_classifier(
            model, encoded["labelled"], encoded["test"], cfg.teacher, seed=0, device=device
        )
        return {"accuracy": accuracy, "seconds": time.perf_counter() - began, "loss": losses}

    key = {"task": "ag_news", "labelled": cfg.labelled, "test": cfg.test}
    key["finetune"] = dataclasses.asdict(cfg.teacher)
    with seeded(0):  # the head's init and the dropout of training, as one stream
        model, meta = hub.cached_module("ch08-teacher", key, build, train, verbose=False)
    model.eval()

    def logits():  # the teacher's outputs on every split: a pure function of the cached teacher
        return {
            name: logits_of(model, split, device=device) for name, split in encoded.items()
        }, None

    rows = {
        name: [len(split["input_ids"]), int(split["input_ids"].sum())]
        for name, split in encoded.items()
    }
    cached, _ = hub.cached_tensors(
        "ch08-teacher-logits", {**key, "rows": rows}, logits, verbose=False
    )
    for name, split in encoded.items():
        split[TEACHER] = cached[name]
    return model.cpu(), meta


def make_student(
    name: str,
    cfg: DistillChapterConfig,
    teacher_model: torch.nn.Module,
    seed: int = 0,
    pieces: torch.Tensor | None = None,
) -> torch.nn.Module:
    """``"half"``: the teacher's layers ``cfg.half_layers`` (DistilBERT's initialisation);
    ``"bag"``: a bag of word pieces trained from scratch (:class:`tlcourse.distill.PieceBag`,
    ``cfg.bag_dim`` wide, initialised with ``seed``, with rows for the word pieces ``pieces``)."""
    if name == "bag":
        return bag_student(teacher_model, cfg.bag_dim, seed=seed, keep=pieces)
    if name == "half":
        return layer_subset_student(teacher_model, cfg.half_layers)
    raise ValueError(f"make_student: unknown student {name!r}; use 'half' or 'bag'.")


def teacher_answers(split: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``split`` with its labels replaced by the teacher's arg-max class: what a student learns
    from the teacher's answers alone, without its probabilities."""
    return {**split, "labels": split[TEACHER].argmax(-1)}


def with_text(encoded: dict, sources: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The splits ``sources`` concatenated, labels dropped (the teacher's logits kept): text for
    a student trained on the teacher's predictions alone (``alpha = 1``)."""
    keys = [k for k in encoded[sources[0]] if k != "labels"]
    return {k: torch.cat([encoded[name][k] for name in sources]) for k in keys}


def same_steps(run: FinetuneConfig, n_from: int, n_to: int) -> FinetuneConfig:
    """``run``'s budget, counted in optimiser steps, for a training set of ``n_to`` rows instead
    of ``n_from``: fewer passes over more text, the same number of steps."""
    # half a step of slack, so that rounding cannot lose the last step
    matched = dataclasses.replace(run, epochs=(run.steps(n_from) + 0.5) * run.batch / n_to)
    if matched.steps(n_to) != run.steps(n_from):
        raise ValueError(f"same_steps: cannot match {run.steps(n_from)} steps on {n_to} rows.")
    return matched


def agreement(model: torch.nn.Module, split: dict[str, torch.Tensor]) -> float:
    """Share of rows on which ``model`` predicts the teacher's class."""
    return evaluate(model, teacher_answers(split))


def student_runs(
    cfg: DistillChapterConfig,
    teacher_model: torch.nn.Module,
    conditions: dict[str, tuple[dict, float, FinetuneConfig]],
    test: dict[str, torch.Tensor],
    student: str = "bag",
    seeds: int | None = None,
    pieces: torch.Tensor | None = None,
    device="cpu",
    progress: bool = True,
) -> tuple[pd.DataFrame, dict[str, torch.nn.Module]]:
    """Train a ``student`` (:func:`make_student`) for every condition ``name -> (training split,
    alpha, budget)`` and every seed in ``range(seeds)`` (default ``cfg.seeds``; seed s initialises
    the student and orders the batches, the same for every condition: paired runs). Returns one
    row per run (``condition``, ``seed``, ``accuracy``, ``agreement`` with the teacher,
    ``seconds``, ``steps``) and each condition's seed-0 student. ``pieces`` goes to
    :func:`make_student`."""
    rows, kept = [], {}
    seeds = cfg.seeds if seeds is None else seeds
    jobs = [(name, seed) for seed in range(seeds) for name in conditions]
    for name, seed in progress_bar(jobs, desc="students", progress=progress):
        split, alpha, budget = conditions[name]
        began = time.perf_counter()
        with seeded(seed):  # the init and the dropout of training: the run's own stream
            model = make_student(student, cfg, teacher_model, seed=seed, pieces=pieces)
            accuracy, _ = distil(
                model, split, test, budget, alpha=alpha, tau=cfg.tau, seed=seed, device=device
            )
        rows.append(
            {
                "condition": name,
                "seed": seed,
                "accuracy": accuracy,
                "agreement": agreement(model, test),
                "seconds": time.perf_counter() - began,
                "steps": budget.steps(len(split["input_ids"])),
            }
        )
        if seed == 0:
            kept[name] = model
    return pd.DataFrame(rows), kept


def paired_effects(runs: pd.DataFrame, pairs: list[tuple[str, str]]) -> pd.DataFrame:
    """Mean difference in accuracy, ``a - b``, over the seeds both conditions share, with its
    standard error (the seeds pair the runs: same initialisation, same batches): one row of
    :func:`tlcourse.viz.paired_effect` per pair."""
    rows = [paired_effect(runs, a, b, by=None, column="condition") for a, b in pairs]
    return pd.concat(rows)[["difference", "SE"]]


def training_pieces(
    encoded: dict, sources: tuple[str, ...] = ("labelled", "unlabelled"), min_count: int = 1
) -> torch.Tensor:
    """The ids of the word pieces that occur at least ``min_count`` times in the splits
    ``sources`` (the chapter's training text; the test split is not looked at)."""
    counts = torch.bincount(torch.cat([encoded[name]["input_ids"].flatten() for name in sources]))
    return (counts >= min_count).nonzero().flatten()


def trimmed(
    student: torch.nn.Module,
    encoded: dict,
    unk_id: int,
    sources: tuple[str, ...] = ("labelled", "unlabelled"),
    min_count: int = 1,
) -> tuple[torch.nn.Module, dict]:
    """A copy of ``student`` keeping only the word pieces that occur at least ``min_count`` times
    in the training text ``sources`` (:func:`tlcourse.distill.trim_vocabulary`), and the test
    split re-encoded for it (pieces it does not keep become ``[UNK]``)."""
    keep = training_pieces(encoded, sources, min_count)
    model, id_map = trim_vocabulary(copy.deepcopy(student), keep, unk_id)
    return model, remap(encoded["test"], id_map)


def deployment_table(
    models: dict[str, tuple[torch.nn.Module, dict]], batch: int = 64, timed_rows: int | None = 256
) -> pd.DataFrame:
    """Per model (``name -> (model, encoded test data)``): parameters, CPU throughput (rows per
    second, timed on the first ``timed_rows`` test rows, the same batches for all; the fastest of
    three passes, since a busy machine slows some passes), accuracy on all test rows, and the
    shares of the teacher's (the first entry's)."""
    rows = []
    for name, (model, test) in models.items():
        timed = {k: v[:timed_rows] for k, v in test.items()}
        rows.append(
            {
                "model": name,
                "parameters": parameter_counts(model)[1],
                "rows/s": throughput(model, timed, batch, repeats=3),
                "accuracy": evaluate(model, test),
            }
        )
    table = pd.DataFrame(rows).set_index("model")
    first = table.iloc[0]
    table["params share"] = table.parameters / first.parameters
    table["speed-up"] = table["rows/s"] / first["rows/s"]
    table["accuracy share"] = table.accuracy / first.accuracy
    return table
