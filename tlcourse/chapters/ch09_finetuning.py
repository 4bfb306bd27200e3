"""Chapter 9: the experiments — what fine-tuning forgets, and the strategies that keep it.

A *source* model (MiniLM fine-tuned on SST-2 sentiment, cached) is fine-tuned again on a *target*
task (AG News topics, a new 4-way head). Each strategy of :mod:`tlcourse.strategies` is run on the
same target data with the same seeds, and two numbers are kept per run: the target accuracy, and
the source accuracy of the new body read by the *old* SST-2 head (how much of the source task is
forgotten, as in the set-up of Li & Hoiem 2016, "Learning without forgetting").

* :class:`FinetuningChapterConfig` / :data:`CONFIGS`: the chapter's sizes per profile;
* :func:`source_model`: MiniLM + mean pooling fine-tuned on SST-2 (cached artefact);
* :func:`target_splits`: the encoded AG News train subset of one seed and the fixed test set;
* :func:`run_strategy`: one strategy, one seed: target accuracy, source accuracy, distance moved;
* :func:`strategy_runs`: every strategy x seed, as a DataFrame;
* :func:`drop_vowels`, :func:`shifted_sst2`, :func:`surgical_runs`: surgical fine-tuning (Lee et al.
  2023) of one block at a time, under an input-level and an output-level shift of SST-2.
"""

from __future__ import annotations

import copy
import re
import time
from dataclasses import dataclass, field, replace

import pandas as pd
import torch

from ..config import Profiles
from .. import data, hub
from ..finetune import FinetuneConfig, encode, evaluate, finetune_classifier, minilm_classifier
from ..strategies import (
    L2SP,
    block_names,
    blocks,
    discriminative_groups,
    head_features,
    linear_probe_head,
    tune_only,
)
from ..train import progress_bar, seeded

STRATEGIES = (
    "feature extraction",
    "full fine-tuning",
    "L2-SP",
    "top layers only",
    "LP-FT",
    "discriminative rates",
)


@dataclass(frozen=True)
class FinetuningChapterConfig:
    """Sizes of chapter 9 for one profile."""

    source_train: int = 1280  # SST-2 training sentences (class-balanced)
    source_test: int = 200  # SST-2 validation sentences (class-balanced)
    source: FinetuneConfig = field(
        default_factory=lambda: FinetuneConfig(
            epochs=1.0, min_steps=10, max_steps=10_000, batch=16, lr=1e-4, head_lr_scale=20.0
        )
    )
    target_train: int = 256  # AG News articles with labels (class-balanced, one subset per seed)
    target_test: int = 200  # of the official test set (class-balanced, the same for every run)
    target_len: int = 32  # tokens: the first sentence or two of an article names its topic
    # The target runs: a learning rate at which full fine-tuning fits the target fast and moves the
    # body far (the regime where forgetting shows); the new head at its own, higher rate. 48 steps
    # of 8 articles: small batches keep the cpu profile within its time.
    target: FinetuneConfig = field(
        default_factory=lambda: FinetuneConfig(
            epochs=1.5, min_steps=30, max_steps=10_000, batch=8, lr=5e-4, head_lr_scale=4.0,
            max_len=32,
        )
    )  # fmt: skip
    l2sp: float = 1.0  # lambda of L2-SP (the paper's alpha / 2)
    top_layers: int = 2  # "top layers only": the top encoder layers and the head train
    decay: float = 2.6  # discriminative rates: each block down divides the rate by this (ULMFiT)
    # discriminative rates only in the gpu profile: the cpu profile's five minutes hold four
    strategies: tuple[str, ...] = (
        "feature extraction",
        "full fine-tuning",
        "L2-SP",
        "top layers only",
    )
    budgets: tuple[int, ...] = (32, 256)  # labels: feature extraction vs fine-tuning
    seeds: int = 3
    # Surgical fine-tuning: shifted SST-2 sentences for the source model, one block tuned at a time
    # (None: every block and "all"). The source head is pretrained, so it gets its own high rate.
    surgical_train: int = 128
    surgical_blocks: tuple[str, ...] | None = ("embeddings", "head")
    surgical: FinetuneConfig = field(
        default_factory=lambda: FinetuneConfig(
            epochs=2.0, min_steps=24, max_steps=10_000, batch=8, lr=5e-4, head_lr_scale=20.0,
            max_len=48,
        )
    )  # fmt: skip


def smoke(cfg: FinetuningChapterConfig) -> FinetuningChapterConfig:
    """``cfg`` shrunk for a smoke run (``TLCOURSE_SMOKE=1``): a few steps and rows, the same
    switches and code paths."""
    quick = dict(min_steps=2, max_steps=3)
    return replace(
        cfg,
        source_train=128,
        source_test=64,
        source=replace(cfg.source, **quick),
        target_train=64,
        target_test=64,
        target=replace(cfg.target, **quick),
        budgets=(32, 64),
        seeds=2,
        surgical_train=32,
        surgical=replace(cfg.surgical, **quick),
    )


CONFIGS = Profiles(
    {
        "cpu": FinetuningChapterConfig(),
        "gpu": FinetuningChapterConfig(
            source_train=8000,
            source_test=872,
            target_train=1024,
            target_test=2000,
            budgets=(32, 128, 512, 1024),
            seeds=5,
            strategies=(*FinetuningChapterConfig.strategies, "discriminative rates"),
            surgical_train=512,
            surgical_blocks=None,
        ),
    },
    smoke=smoke,
)


def source_model(cfg: FinetuningChapterConfig, tokenizer, device="cpu") -> torch.nn.Module:
    """MiniLM read out by its token mean with a 2-way head, fine-tuned on ``cfg.source_train``
    SST-2 sentences: the model whose SST-2 skill the target fine-tuning may forget. Cached."""
    sst2 = data.load("sst2")

    def build() -> torch.nn.Module:
        with seeded(0):
            return minilm_classifier(2)

    def train(model: torch.nn.Module) -> dict:
        rows = data.budget_subset(sst2["train"], cfg.source_train, seed=0)
        encoded = encode(tokenizer, rows, ["sentence"], cfg.source.max_len)
        start = time.time()
        _, losses = finetune_classifier(model, encoded, encoded, cfg.source, seed=0, device=device)
        return {"final_loss": losses[-1], "seconds": time.time() - start}

    key = {"rows": cfg.source_train, **cfg.source.__dict__}
    model, _ = hub.cached_module("ch09-source", key, build, train)
    return model.eval()


def source_test(cfg: FinetuningChapterConfig, tokenizer) -> dict[str, torch.Tensor]:
    """The SST-2 validation sentences on which forgetting is measured."""
    rows = data.budget_subset(data.load("sst2")["validation"], cfg.source_test, seed=0)
    return encode(tokenizer, rows, ["sentence"], cfg.source.max_len)


def target_splits(
    cfg: FinetuningChapterConfig, tokenizer, n: int, seed: int
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``n`` labelled AG News articles (class-balanced, drawn with ``seed``) and the test set."""
    ag = data.load("ag_news")
    train = data.budget_subset(ag["train"], n, seed)
    test = data.budget_subset(ag["test"], cfg.target_test, 0)
    return (
        encode(tokenizer, train, ["text"], cfg.target_len),
        encode(tokenizer, test, ["text"], cfg.target_len),
    )


def source_accuracy(model, source_head: torch.nn.Module, test: dict[str, torch.Tensor]) -> float:
    """Accuracy on the source task of ``model``'s body read by the source model's own head."""
    target_head, model.classifier = model.classifier, source_head
    try:
        return evaluate(model, test)
    finally:
        model.classifier = target_head


def distance(model, start: dict[str, torch.Tensor]) -> float:
    """How far the body moved: ``||theta - theta0||`` over the parameters outside the head."""
    body = [(n, p) for name, ps in blocks(model) if name != "head" for n, p in ps]
    return float(sum((p.detach() - start[n]).pow(2).sum() for n, p in body) ** 0.5)


def run_strategy(
    strategy: str,
    source: torch.nn.Module,
    train: dict[str, torch.Tensor],
    test: dict[str, torch.Tensor],
    src_test: dict[str, torch.Tensor] | None,
    cfg: FinetuningChapterConfig,
    seed: int,
    device="cpu",
) -> dict:
    """Fine-tune a copy of ``source`` with a new 4-way head on ``train`` by ``strategy``.

    Returns the target accuracy, the source accuracy (old head on the new body; NaN without
    ``src_test``), the distance the body moved, and the wall time. The new head's initialisation
    and the batches depend on ``seed`` only, so strategies with the same seed see the same data in
    the same order.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"Unknown strategy {strategy!r}; chapter 9 runs: {', '.join(STRATEGIES)}.")
    start_time = time.time()
    model = copy.deepcopy(source)
    with seeded(100 + seed):
        model.classifier = torch.nn.Linear(model.classifier.in_features, 4)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    tcfg, groups, after = cfg.target, None, None
    head_lr = tcfg.lr * tcfg.head_lr_scale
    if strategy in ("feature extraction", "LP-FT"):
        linear_probe_head(model, head_features(model, train), train["labels"])
    if strategy == "feature extraction":
        target_acc = evaluate(model, test)
    else:
        if strategy == "L2-SP":
            reg = L2SP(model, lam=cfg.l2sp)
            after = lambda: reg.add_gradient(model)  # noqa: E731
            named = list(model.named_parameters())
            body = [p for n, p in named if n in reg.start]
            head = [p for n, p in named if n not in reg.start]
            # the body decays towards its start (L2-SP), not towards zero
            groups = [
                {"params": body, "lr": tcfg.lr, "weight_decay": 0.0},
                {"params": head, "lr": head_lr},
            ]
        elif strategy == "top layers only":
            names = [name for name, _ in blocks(model)]
            tune_only(model, names[-1 - cfg.top_layers :])
        elif strategy == "discriminative rates":
            groups = discriminative_groups(model, tcfg.lr, decay=cfg.decay, head_lr=head_lr)
        with seeded(1000 + seed):  # dropout too: a run does not depend on the runs before it
            target_acc, _ = finetune_classifier(
                model, train, test, tcfg, seed=seed, device=device, param_groups=groups,
                after_backward=after,
            )  # fmt: skip
    source_head = source.classifier
    return {
        "strategy": strategy,
        "seed": seed,
        "labels": len(train["labels"]),
        "target": target_acc,
        "source": float("nan")
        if src_test is None
        else source_accuracy(model, source_head, src_test),
        "distance": distance(model, start),
        "seconds": time.time() - start_time,
    }


def strategy_runs(
    cfg: FinetuningChapterConfig,
    tokenizer,
    source: torch.nn.Module,
    strategies: tuple[str, ...] | None = None,
    n: int | None = None,
    device="cpu",
    progress: bool = True,
    forgetting: bool = True,
) -> pd.DataFrame:
    """Every strategy x seed on ``n`` target labels (default ``cfg.target_train``); one row each.
    ``forgetting=False`` skips the source-task evaluation (its column is NaN)."""
    strategies = strategies or cfg.strategies
    n = n or cfg.target_train
    src_test = source_test(cfg, tokenizer) if forgetting else None
    rows = []
    bar = progress_bar(total=len(strategies) * cfg.seeds, desc=f"{n} labels", progress=progress)
    for seed in range(cfg.seeds):
        train, test = target_splits(cfg, tokenizer, n, seed)
        for strategy in strategies:
            rows.append(run_strategy(strategy, source, train, test, src_test, cfg, seed, device))
            bar.update()
    bar.close()
    return pd.DataFrame(rows)


# Two shifts of SST-2 for the source model, and the level at which each one acts (Lee et al. 2023).
SHIFTS = {"no vowels": "input", "flipped labels": "output"}


def drop_vowels(text: str) -> str:
    """An input-level shift: words of four letters or more keep their first letter and lose every
    other vowel ("this movie is great" -> "ths mv is grt"). The meaning, and so the label, stays."""
    return " ".join(
        word if len(word) < 4 else word[0] + re.sub("[aeiou]", "", word[1:])
        for word in text.split(" ")
    )


def shifted_sst2(
    cfg: FinetuningChapterConfig, tokenizer, shift: str, n: int, seed: int
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``n`` SST-2 training sentences (class-balanced, seed ``10 + seed``: not the source model's
    own subset) and the source test sentences, both under ``shift`` (a key of :data:`SHIFTS`)."""
    if shift not in SHIFTS:
        raise ValueError(f"Unknown shift {shift!r}; chapter 9 has: {', '.join(SHIFTS)}.")
    sst2 = data.load("sst2")

    def apply(rows):
        if shift == "no vowels":
            return rows.map(lambda r: {"sentence": drop_vowels(r["sentence"])})
        return rows.map(lambda r: {"label": 1 - r["label"]})

    train = apply(data.budget_subset(sst2["train"], n, seed=10 + seed))
    test = apply(data.budget_subset(sst2["validation"], cfg.source_test, seed=0))
    encoded = [
        encode(tokenizer, rows, ["sentence"], cfg.surgical.max_len) for rows in (train, test)
    ]
    return encoded[0], encoded[1]


def surgical_runs(
    cfg: FinetuningChapterConfig, tokenizer, source: torch.nn.Module, device="cpu", progress=True
) -> pd.DataFrame:
    """Surgical fine-tuning: for each shift of :data:`SHIFTS` and seed, a copy of the source model
    (its own SST-2 head kept) is tuned on ``cfg.surgical_train`` shifted sentences with only one
    block trainable (``cfg.surgical_blocks``; ``"all"`` = every block). Rows: shift, level, block,
    seed, accuracy on the shifted test set; block ``"none"`` is the source model untouched."""
    names = block_names(source)
    tuned = cfg.surgical_blocks or (*names, "all")
    if unknown := sorted(set(tuned) - {*names, "all"}):
        raise ValueError(f"surgical_blocks: unknown {unknown}; the blocks are {names} and 'all'.")
    rows = []
    bar = progress_bar(
        total=len(SHIFTS) * cfg.seeds * len(tuned), desc="surgical", progress=progress
    )
    for shift, level in SHIFTS.items():
        for seed in range(cfg.seeds):
            train, test = shifted_sst2(cfg, tokenizer, shift, cfg.surgical_train, seed)
            row = {"shift": shift, "level": level, "seed": seed}
            if seed == 0:
                rows.append({**row, "block": "none", "accuracy": evaluate(source, test)})
            for block in tuned:
                model = copy.deepcopy(source)
                tune_only(model, names if block == "all" else [block])
                with seeded(1000 + seed):
                    acc, _ = finetune_classifier(
                        model, train, test, cfg.surgical, seed=seed, device=device
                    )
                rows.append({**row, "block": block, "accuracy": acc})
                bar.update()
    bar.close()
    return pd.DataFrame(rows)
