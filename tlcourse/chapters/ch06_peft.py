"""Chapter 6: the experiments — accuracy against trainable parameters, memory and checkpoint size,
and one frozen MiniLM serving two tasks through swapped LoRA weights.

* :class:`PeftChapterConfig` / :data:`CONFIGS`: the chapter's sizes per profile;
* :func:`build` makes MiniLM for sequence classification adapted by one method ("head only",
  "BitFit", "prompt tuning", "adapters", "LoRA r=8", "full");
* :func:`method_runs` fine-tunes each method with its learning rate for the same number of steps;
* :class:`TaskSwitcher` keeps one frozen base and, per task, the LoRA factors and the head.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field

import pandas as pd
import torch

from .. import hub
from ..adapters import PromptTuning, bitfit, insert_adapters
from ..finetune import FinetuneConfig, encode, evaluate, finetune_classifier
from ..lora import freeze_except, inject_lora, lora_layers, lora_state
from ..train import adamw, parameter_counts, progress_bar


@dataclass(frozen=True)
class PeftChapterConfig:
    """Sizes of chapter 6 for one profile."""

    train_size: int = 2000  # SST-2 training sentences (class-balanced subset); dev: all 872
    ag_train: int = (
        2000  # AG News articles for the second task; test: ag_test of the official test set
    )
    ag_test: int = 500
    finetune: FinetuneConfig = field(
        default_factory=lambda: FinetuneConfig(
            epochs=1.0, min_steps=10, max_steps=10_000, batch=32, max_len=64
        )
    )
    # learning rates per method (Hu et al. 2022 and Lester et al. 2021 use far larger rates for the
    # small added parts than full fine-tuning does; chosen here by a short sweep, see the chapter)
    lrs: dict = field(
        default_factory=lambda: {
            "head only": 2e-3,
            "BitFit": 2e-3,
            "prompt tuning": 3e-2,
            "adapters": 2e-3,
            "LoRA": 2e-3,
            "full": 1e-4,
        }
    )
    ranks: tuple[int, ...] = (1, 4, 16)
    lora_rank: int = 4  # "the" LoRA of the chapter (the rank of the paper's GPT-3 runs)
    alpha: float = 16.0
    targets: tuple[str, ...] = ("query", "value")
    bottleneck: int = 16
    prompt_tokens: int = 10
    seeds: int = 1  # per method; the two methods compared most closely get key_seeds
    key_seeds: int = 2
    low_lr: float = 5e-5  # LoRA with a full-fine-tuning learning rate


CONFIGS = {
    "cpu": PeftChapterConfig(),
    "gpu": PeftChapterConfig(
        train_size=8000,
        ag_train=8000,
        ag_test=2000,
        seeds=5,
        key_seeds=5,
        ranks=(1, 2, 4, 8, 16),
        finetune=FinetuneConfig(epochs=2.0, min_steps=10, max_steps=10_000, batch=32, max_len=128),
    ),
}


def methods(cfg: PeftChapterConfig) -> list[str]:
    """The methods of the accuracy-versus-parameters figure, fewest trainable parameters first."""
    return [
        "head only",
        "prompt tuning",
        "BitFit",
        *(f"LoRA r={r}" for r in cfg.ranks),
        "adapters",
        "full",
    ]


def learning_rate(cfg: PeftChapterConfig, method: str) -> float:
    return cfg.lrs["LoRA" if method.startswith("LoRA") else method]


def build(
    method: str, cfg: PeftChapterConfig, num_labels: int = 2, seed: int = 0
) -> torch.nn.Module:
    """MiniLM with a new classification head, adapted by ``method`` (only its parameters train)."""
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(seed)
    model = hub.load_model("minilm", AutoModelForSequenceClassification, num_labels=num_labels)
    if method == "full":
        return model
    if method == "head only":  # feature extraction: the encoder frozen
        freeze_except(model, ["classifier"])
    elif method == "BitFit":
        bitfit(model)
    elif method == "adapters":
        insert_adapters(model, cfg.bottleneck)
    elif method == "prompt tuning":
        return PromptTuning(model, cfg.prompt_tokens)
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
                task_type="SEQ_CLS",
            ),
        )
    else:
        raise ValueError(f"build: unknown method {method!r}; the methods are {methods(cfg)}.")
    return model


def runs(cfg: PeftChapterConfig) -> list[tuple[str, float, int]]:
    """``(method, learning rate, seeds)`` of the chapter: every method at its rate, LoRA and full
    fine-tuning with more seeds, and LoRA once more at ``cfg.low_lr``."""
    key = {f"LoRA r={cfg.lora_rank}", "full"}
    out = [
        (m, learning_rate(cfg, m), cfg.key_seeds if m in key else cfg.seeds) for m in methods(cfg)
    ]
    return out + [(f"LoRA r={cfg.lora_rank}", cfg.low_lr, 1)]


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
    Also returns the seed-0 models of the methods in ``keep`` (at their usual learning rate)."""
    enc_train = encode(tokenizer, train, ["sentence"], cfg.finetune.max_len)
    enc_test = encode(tokenizer, test, ["sentence"], cfg.finetune.max_len)
    rows, kept = [], {}
    flat = [(m, lr, s) for m, lr, seeds in jobs for s in range(seeds)]
    for method, lr, seed in progress_bar(flat, progress=progress, desc="fine-tuning runs"):
        model = build(method, cfg, seed=seed)
        trainable, total = parameter_counts(model)
        run_cfg = FinetuneConfig(**{**cfg.finetune.__dict__, "lr": lr})
        began = time.perf_counter()
        accuracy, losses = finetune_classifier(model, enc_train, enc_test, run_cfg, seed, device)
        rows.append(
            {
                "method": method,
                "lr": lr,
                "seed": seed,
                "accuracy": accuracy,
                "trainable": trainable,
                "total": total,
                "steps": len(losses),
                "seconds": time.perf_counter() - began,
                "final loss": sum(losses[-10:]) / len(losses[-10:]),
            }
        )
        if method in keep and seed == 0 and lr == learning_rate(cfg, method):
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
        self.model.num_labels = self.model.config.num_labels = head.out_features
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
