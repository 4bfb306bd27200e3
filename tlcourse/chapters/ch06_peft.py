"""Chapter 6: the experiments — accuracy against trainable parameters, memory and checkpoint size,
and one frozen MiniLM serving two tasks through swapped LoRA weights. MiniLM is read out by the mean
of its token states, the pooling it was trained with (Reimers & Gurevych 2019).

* :class:`PeftChapterConfig` / :data:`CONFIGS`: the chapter's sizes per profile;
* :func:`build` makes MiniLM for sequence classification adapted by one method ("head only",
  "BitFit", "prompt tuning", "adapters", "LoRA r=8", "full");
* :func:`method_runs` fine-tunes each method with its learning rate for the same number of steps
  (the head at its own rate; the head-only runs on cached features);
* :class:`TaskSwitcher` keeps one frozen base and, per task, the LoRA factors and the head.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace

import pandas as pd
import torch

from ..config import Profiles
from .. import hub
from ..adapters import PromptTuning, bitfit, insert_adapters
from ..features import mean_pool
from ..finetune import (
    FinetuneConfig,
    encode,
    evaluate,
    finetune_classifier,
    minilm_classifier,
    trim_padding,
)
from ..lora import freeze_except, inject_lora, lora_layers, lora_state
from ..train import adamw, parameter_counts, progress_bar, seeded


@dataclass(frozen=True)
class PeftChapterConfig:
    """Sizes of chapter 6 for one profile."""

    train_size: int = 1280  # SST-2 training sentences (class-balanced subset)
    test_size: int = 436  # SST-2 validation sentences (class-balanced subset of the 872)
    ag_train: int = 800  # AG News articles for the second task
    ag_test: int = 200  # of the official test set
    finetune: FinetuneConfig = field(
        default_factory=lambda: FinetuneConfig(
            epochs=1.0, min_steps=10, max_steps=10_000, batch=32, max_len=64
        )
    )
    # learning rates per method: the small added parts need far larger rates than full fine-tuning
    # (Hu et al. 2022; Ben Zaken et al. 2022 search 1e-4..1e-3; Lester et al. 2021 use 0.3)
    lrs: dict = field(
        default_factory=lambda: {
            "head only": 2e-3,
            "BitFit": 2e-3,
            "prompt tuning": 3e-2,
            "adapters": 2e-3,
            "LoRA": 5e-3,
            "full": 1e-4,
        }
    )
    head_lr: float = 2e-3  # the new head trains at its own rate, whatever the method's
    ranks: tuple[int, ...] = (1, 4)
    with_adapters: bool = False  # adapters in the accuracy figure (the gpu profile)
    lora_rank: int = 4  # "the" LoRA of the chapter (the rank of the paper's GPT-3 runs)
    alpha: float = 16.0
    targets: tuple[str, ...] = ("query", "value")
    bottleneck: int = 16
    prompt_tokens: int = 10
    seeds: int = 3


def smoke(cfg: PeftChapterConfig) -> PeftChapterConfig:
    """``cfg`` shrunk for a smoke run (``TLCOURSE_SMOKE=1``): a few steps and rows, the same
    switches and code paths."""
    return replace(
        cfg,
        train_size=128,
        test_size=64,
        ag_train=64,
        ag_test=32,
        finetune=replace(cfg.finetune, min_steps=2, max_steps=4),
        seeds=2,
    )


CONFIGS = Profiles(
    {
        "cpu": PeftChapterConfig(),
        "gpu": PeftChapterConfig(
            train_size=8000,
            ag_train=8000,
            ag_test=2000,
            test_size=872,
            seeds=5,
            ranks=(1, 2, 4, 8, 16),
            with_adapters=True,
            finetune=FinetuneConfig(
                epochs=2.0, min_steps=10, max_steps=10_000, batch=32, max_len=128
            ),
        ),
    },
    smoke=smoke,
)


def methods(cfg: PeftChapterConfig) -> list[str]:
    """The methods of the accuracy-versus-parameters figure, fewest trainable parameters first."""
    return [
        "head only",
        "prompt tuning",
        "BitFit",
        *(f"LoRA r={r}" for r in cfg.ranks),
        *(["adapters"] if cfg.with_adapters else []),
        "full",
    ]


def learning_rate(cfg: PeftChapterConfig, method: str) -> float:
    return cfg.lrs["LoRA" if method.startswith("LoRA") else method]


def build(
    method: str, cfg: PeftChapterConfig, num_labels: int = 2, seed: int = 0
) -> torch.nn.Module:
    """MiniLM read out by the mean of its token states (the pooling it was trained with;
    :class:`tlcourse.finetune.MeanPoolClassifier`) and a new head ``classifier``, adapted by
    ``method``: only the method's parameters and the head train. ``seed`` fixes the new parts'
    initialisation and nothing else: the caller's random state is as it was."""
    with seeded(seed):
        return _adapted(method, cfg, num_labels, seed)


def _adapted(method: str, cfg: PeftChapterConfig, num_labels: int, seed: int) -> torch.nn.Module:
    """:func:`build`'s body, drawing its initialisation from the global generator (seeded by the
    caller)."""
    model = minilm_classifier(num_labels)
    if method == "full":
        return model
    if method == "head only":  # feature extraction: the encoder frozen
        freeze_except(model, ["classifier"])
    elif method == "BitFit":
        bitfit(model)
    elif method == "adapters":
        insert_adapters(model, cfg.bottleneck)
    elif method == "prompt tuning":
        return PromptTuning(model, cfg.prompt_tokens, seed=seed)
    elif method.startswith("LoRA r="):
        inject_lora(model, cfg.targets, r=int(method.split("=")[1]), alpha=cfg.alpha)
    elif method.startswith("peft LoRA r="):  # the library way, for comparisons
        from peft import LoraConfig, get_peft_model

        return get_peft_model(
            model,
            LoraConfig(
                r=int(method.split("=")[1]),
                lora_alpha=cfg.alpha,
                target_modules=list(cfg.targets),
                lora_dropout=0.0,
                modules_to_save=["classifier"],
            ),
        )
    else:
        raise ValueError(f"build: unknown method {method!r}; the methods are {methods(cfg)}.")
    return model


def runs(cfg: PeftChapterConfig) -> list[tuple[str, float, int]]:
    """``(method, learning rate, seeds)`` of the chapter: every method at its rate."""
    return [(m, learning_rate(cfg, m), cfg.seeds) for m in methods(cfg)]


def run_config(cfg: PeftChapterConfig, lr: float) -> FinetuneConfig:
    """The chapter's budget at learning rate ``lr``, the new head at ``cfg.head_lr`` (peft users
    list the head in ``modules_to_save`` and give it its own rate likewise)."""
    return replace(cfg.finetune, lr=lr, head_lr_scale=cfg.head_lr / lr)


@torch.no_grad()
def pooled_features(model, data: dict[str, torch.Tensor], batch: int = 128) -> torch.Tensor:
    """Mean-pooled states of a frozen MiniLM for encoded ``data``: computed once, they serve every
    run that leaves the encoder frozen (the head alone)."""
    model.eval()
    order = torch.argsort(data["attention_mask"].sum(1), stable=True)  # less padding
    out = torch.empty(len(order), model.classifier.in_features)
    for s in range(0, len(order), batch):
        rows = order[s : s + batch]
        part = trim_padding({k: data[k][rows] for k in ("input_ids", "attention_mask")})
        hidden = model.encoder(**part).last_hidden_state
        out[rows] = mean_pool(hidden, part["attention_mask"])
    return out


def train_head(
    features: torch.Tensor, labels: torch.Tensor, cfg: FinetuneConfig, seed: int, num_labels: int
) -> torch.nn.Module:
    """The head-only run on cached features: the same steps, batches, schedule and optimiser as
    :func:`tlcourse.finetune.finetune_classifier`, without the frozen encoder's repeated passes."""
    with seeded(seed):  # the head's init and its dropout
        head = torch.nn.Linear(features.shape[1], num_labels)
        steps = cfg.steps(len(labels))
        warm = max(1, int(cfg.warmup * steps))
        opt = adamw(head.parameters(), lr=cfg.lr * cfg.head_lr_scale, weight_decay=0.01)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / (steps - warm + 1)))
        )
        gen = torch.Generator().manual_seed(seed)
        drop = torch.nn.Dropout(0.1)
        for _ in range(steps):
            idx = torch.randint(len(labels), (cfg.batch,), generator=gen)
            loss = torch.nn.functional.cross_entropy(head(drop(features[idx])), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
    return head.eval()


def method_runs(
    cfg: PeftChapterConfig,
    jobs: list[tuple[str, float, int]],
    train,
    test,
    tokenizer,
    device="cpu",
    keep: tuple[str, ...] = (),
    progress: bool = True,
) -> tuple[pd.DataFrame, dict]:
    """Fine-tune each ``(method, learning rate, seeds)`` on ``train`` (SST-2 rows); one row per run.
    Also returns the seed-0 models of the methods in ``keep``."""
    enc_train = encode(tokenizer, train, ["sentence"], cfg.finetune.max_len)
    enc_test = encode(tokenizer, test, ["sentence"], cfg.finetune.max_len)
    rows, kept, cached = [], {}, None
    flat = [(m, lr, s) for m, lr, seeds in jobs for s in range(seeds)]
    for method, lr, seed in progress_bar(flat, progress=progress, desc="fine-tuning runs"):
        run_cfg = run_config(cfg, lr)
        # the seed fixes the run's init and then its dropout, one stream; the caller's is untouched
        with seeded(seed):
            model = _adapted(method, cfg, 2, seed)
            trainable, total = parameter_counts(model)
            began = time.perf_counter()
            if method == "head only":
                if cached is None:
                    cached = [pooled_features(model, d) for d in (enc_train, enc_test)]
                head = train_head(cached[0], enc_train["labels"], run_cfg, seed, 2)
                accuracy = (head(cached[1]).argmax(-1) == enc_test["labels"]).float().mean().item()
                model.classifier = head
                losses = [float("nan")]
            else:
                accuracy, losses = finetune_classifier(
                    model, enc_train, enc_test, run_cfg, seed, device
                )
        rows.append(
            {
                "method": method,
                "lr": lr,
                "seed": seed,
                "accuracy": accuracy,
                "trainable": trainable,
                "total": total,
                "seconds": time.perf_counter() - began,
                "final loss": sum(losses[-10:]) / len(losses[-10:]),
            }
        )
        if method in keep and seed == 0:
            kept[method] = model
    return pd.DataFrame(rows), kept


class TaskSwitcher:
    """One frozen MiniLM with LoRA layers; per task, only the LoRA factors and a head are stored.

    ``add(task, model)`` keeps a trained model's LoRA factors and head; ``activate(task)`` copies
    them into the shared model, which then computes that task's function.
    """

    def __init__(self, base: torch.nn.Module) -> None:
        self.model = base
        self.tasks: dict[str, tuple[dict[str, torch.Tensor], torch.nn.Module]] = {}

    def add(self, task: str, trained: torch.nn.Module) -> int:
        state = {k: v for k, v in lora_state(trained, extra=()).items()}
        self.tasks[task] = (state, trained.classifier)
        return sum(v.numel() for v in state.values()) + sum(
            p.numel() for p in trained.classifier.parameters()
        )

    def activate(self, task: str) -> torch.nn.Module:
        if task not in self.tasks:
            raise KeyError(f"TaskSwitcher: no task {task!r}; added: {sorted(self.tasks)}.")
        state, head = self.tasks[task]
        layers = lora_layers(self.model)
        with torch.no_grad():
            for name, tensor in state.items():
                module, _, part = name.rpartition(".")
                getattr(layers[module], part).copy_(tensor)
        self.model.classifier = head
        return self.model


def task_accuracy(model, tokenizer, test, columns=("sentence",), max_len: int = 64) -> float:
    return evaluate(model, encode(tokenizer, test, list(columns), max_len))


# --------------------------------------------------------------------------------------------
# Measuring a training step in a fresh process (its peak memory is then its own)


def _step_child(method: str, steps: int, batch: int, max_len: int) -> None:
    """Run in a subprocess: ``steps`` AdamW steps of ``method`` on random batches; print
    seconds/step and peak RSS."""
    import resource

    model = build(method, PeftChapterConfig()).train()
    opt = adamw([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    g = torch.Generator().manual_seed(1)
    start = None
    for i in range(steps + 2):
        if i == 2:
            start = time.perf_counter()
        ids = torch.randint(1000, 30000, (batch, max_len), generator=g)
        labels = torch.randint(2, (batch,), generator=g)
        loss = torch.nn.functional.cross_entropy(
            model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits, labels
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    # VmHWM is this process's own peak; ru_maxrss would include the parent's memory at fork time
    hwm = (
        next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
        if sys.platform == "linux"
        else None
    )
    rss = (
        int(hwm.split()[1]) / 1024
        if hwm
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    )
    print(json.dumps({"seconds": (time.perf_counter() - start) / steps, "rss_mb": rss}))


def step_profile(
    method: str, steps: int = 5, batch: int = 32, max_len: int = 64
) -> dict[str, float]:
    """Seconds per training step and peak resident memory (MB) of ``method``, measured in a new
    process."""
    code = (
        "from tlcourse.chapters import ch06_peft; "
        f"ch06_peft._step_child({method!r}, {steps}, {batch}, {max_len})"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"step_profile({method!r}) failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])
