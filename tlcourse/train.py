"""One small training loop for every chapter: a progress bar, a history, and periodic evaluation.

The loop is deliberately plain (nanoGPT-style): the chapter passes a model, an iterator of batches
and a loss function; everything method-specific lives in the method's or the chapter's module, not
here.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm


def progress_bar(*args: Any, progress: bool = True, **kwargs: Any) -> tqdm:
    """A ``tqdm.auto`` bar (a widget in Jupyter), off when ``progress=False`` or ``TQDM_DISABLE`` is
    set.

    tqdm reads ``TQDM_DISABLE`` only when ``disable`` is not passed, so the modules pass it here.
    """
    off = not progress or os.environ.get("TQDM_DISABLE", "").strip().lower() in {"1", "true", "yes"}
    return tqdm(*args, disable=off, **kwargs)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's generators seeded by ``seed``, and put the caller's states back
    after it.

    A function that seeds torch's global generator changes every later draw of its caller: running
    or skipping one notebook cell would change what the next cells draw. Inside this block the
    function's own draws (initialisation, dropout) are fixed by ``seed``; outside, nothing has
    moved. ``torch.manual_seed`` also seeds the GPUs' generators, so those are forked as well.
    """
    gpus = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=gpus):
        torch.manual_seed(seed)
        yield


def adamw(params: Iterable, lr: float, weight_decay: float = 0.01) -> torch.optim.AdamW:
    """AdamW (Loshchilov & Hutter, 2019, algorithm 2) with PyTorch's fused kernel where there is
    one.

    On a CPU, PyTorch's default AdamW updates the tensors one at a time from Python: for MiniLM
    (103 tensors, 22.7M numbers) that took longer per step than the forward and backward pass of a
    batch, and the fused kernel is over ten times faster. The algorithm is the same; only float
    rounding differs. ``weight_decay=0`` makes it Adam (Kingma & Ba, 2015).
    """
    params = list(params)
    tensors = [
        p for group in params for p in (group["params"] if isinstance(group, dict) else [group])
    ]
    fused = bool(tensors) and all(
        p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in tensors
    )
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused or None)


LossFn = Callable[[torch.nn.Module, Any], torch.Tensor]
EvalFn = Callable[[torch.nn.Module], "dict[str, float]"]


@dataclass
class History:
    """Losses per step and evaluation metrics per evaluation step; :mod:`tlcourse.viz` plots it."""

    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)

    def log_eval(self, step: int, values: dict[str, float]) -> None:
        self.eval_steps.append(step)
        for k, v in values.items():
            self.metrics.setdefault(k, []).append(float(v))

    def last(self, metric: str) -> float:
        """The most recent value of an evaluation metric (or of ``"loss"``)."""
        if metric == "loss":
            return self.loss[-1]
        if metric not in self.metrics:
            raise KeyError(
                f"No metric {metric!r} in this history; "
                f"it has: loss, {', '.join(self.metrics) or '(none)'}."
            )
        return self.metrics[metric][-1]


def random_batches(
    *tensors: torch.Tensor, batch_size: int, generator: torch.Generator | None = None
) -> Iterator:
    """Endless minibatches drawn with replacement from tensors that share their first dimension.

    When ``batch_size`` is at least the number of rows, every batch is the full set (full-batch
    training).
    """
    n = len(tensors[0])
    if any(len(t) != n for t in tensors):
        raise ValueError(
            f"random_batches: tensors have different lengths {[len(t) for t in tensors]}."
        )
    if n == 0:
        raise ValueError("random_batches: no rows to sample from.")
    while True:
        if batch_size >= n:
            yield tensors
        else:
            idx = torch.randint(n, (batch_size,), generator=generator)
            yield tuple(t[idx] for t in tensors)


def fit(
    model: torch.nn.Module,
    batches: Iterable,
    loss_fn: LossFn,
    *,
    steps: int,
    lr: float = 1e-3,
    params: Iterable[torch.nn.Parameter] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    weight_decay: float = 0.0,
    clip_grad: float | None = None,
    warmup: int | None = None,
    eval_fn: EvalFn | None = None,
    eval_every: int | None = None,
    progress: bool = True,
    desc: str = "train",
) -> History:
    """Train ``model`` for ``steps`` steps of ``loss_fn(model, batch)`` and return the
    :class:`History`.

    ``params`` restricts what is trained (e.g. only a new head on a frozen body); the default
    optimiser is AdamW (Loshchilov & Hutter, 2019). With ``warmup`` the learning rate rises
    linearly over that many steps and then decays linearly to zero at ``steps`` (BERT's and T5's
    fine-tuning schedule). ``eval_fn(model)`` runs every ``eval_every`` steps and at the end, in
    eval mode and without gradients.
    """
    if steps <= 0:
        raise ValueError(f"fit: steps must be positive, got {steps}.")
    trainable = [
        p for p in (params if params is not None else model.parameters()) if p.requires_grad
    ]
    if not trainable and optimizer is None:
        raise ValueError("fit: nothing to train (no parameter has requires_grad=True).")
    opt = optimizer or adamw(trainable, lr=lr, weight_decay=weight_decay)
    schedule = None
    if warmup is not None:
        warm = max(1, warmup)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm)))
        )
    history = History()
    it = iter(batches)
    bar = progress_bar(range(1, steps + 1), progress=progress, desc=desc, leave=False)
    for step in bar:
        model.train()
        loss = loss_fn(model, next(it))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip_grad is not None:
            torch.nn.utils.clip_grad_norm_(trainable, clip_grad, foreach=True)
        opt.step()
        if schedule is not None:
            schedule.step()
        history.steps.append(step)
        history.loss.append(loss.item())
        if eval_fn is not None and ((eval_every and step % eval_every == 0) or step == steps):
            history.log_eval(step, evaluate(model, eval_fn))
            bar.set_postfix(
                loss=f"{history.loss[-1]:.3f}",
                **{k: f"{v[-1]:.3f}" for k, v in history.metrics.items()},
            )
        elif step % 10 == 0:
            bar.set_postfix(loss=f"{history.loss[-1]:.3f}")
    model.eval()
    return history


def evaluate(model: torch.nn.Module, eval_fn: EvalFn) -> dict[str, float]:
    """Run ``eval_fn(model)`` in eval mode without gradients, restoring the previous mode."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        values = eval_fn(model)
    model.train(was_training)
    return {k: float(v) for k, v in values.items()}


def parameter_counts(model: torch.nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts, each shared (tied) tensor counted once."""
    params = {id(p): p for p in model.parameters()}.values()
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of rows whose arg-max logit equals the label."""
    if logits.shape[0] != labels.shape[0]:
        raise ValueError(f"accuracy: {logits.shape[0]} predictions but {labels.shape[0]} labels.")
    return (logits.argmax(-1) == labels).float().mean().item()


def majority_accuracy(train, test) -> float:
    """Accuracy of always predicting the training set's most frequent label (the baseline a
    classifier must beat); ``train`` and ``test`` are datasets (or dicts) with a ``label``
    column."""
    majority = Counter(train["label"]).most_common(1)[0][0]
    return float(np.mean(np.asarray(test["label"]) == majority))
