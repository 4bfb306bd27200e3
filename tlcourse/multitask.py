"""Chapter 11: multi-task learning — several tasks trained at once, sharing what they can.

The objective is the sum of the tasks' losses, ``min_θ Σ_t w_t L_t(θ, D_t)`` (Caruana 1997;
Ruder 2017, "An overview of multi-task learning in deep neural networks", section 3), and the
question is what ``θ`` the tasks share:

* **hard sharing** (:class:`MultiTaskNet` with ``hard=True``): one body ``h_θ0`` for every task and
  a head ``f_θt`` per task, ``Σ_t Σ_i ℓ(y_ti, f_θt(h_θ0(x_ti)))``. The body's gradient is the sum
  of every task's; a head's is its own task's only.
* **soft sharing** (``hard=False`` plus :func:`soft_sharing_penalty`): every task has its own
  network ``θ_t`` and a penalty ``Σ_{t<u} λ_tu ‖θ_t − θ_u‖²`` pulls the networks together
  (Evgeniou & Pontil 2004's regularised multi-task learning; Duong et al. 2015 use it between two
  parsers). ``λ_tu`` encodes by hand how related tasks ``t`` and ``u`` are; ``λ → ∞`` makes the
  networks equal, ``λ = 0`` leaves independent single-task models.
* **task weights** ``w_t``: fixed (uniform), or learned by :class:`UncertaintyWeights` (Kendall,
  Gal & Cipolla 2018: eq. 10's term for a classification loss, ``L_t / σ_t² + log σ_t``, written
  with ``s_t = log σ_t²`` as ``Σ_t exp(−s_t) L_t + s_t / 2``).

Everything trains with :func:`tlcourse.train.fit`; a batch is a dict ``task -> (x, y)``.
"""

from __future__ import annotations

import itertools
from typing import Callable, Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .train import History, fit

TaskData = Mapping[str, tuple[torch.Tensor, torch.Tensor]]


def mlp_body(in_dim: int, hidden: int, dropout: float = 0.1) -> nn.Module:
    """The default body on frozen sentence features: dropout -> linear -> ReLU."""
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, hidden), nn.ReLU())


class MultiTaskNet(nn.Module):
    """A body and one linear head per task; ``forward(task, x)`` gives that task's logits.

    ``classes`` maps each task to its number of classes. With ``hard=True`` all tasks share one
    ``make_body()``; with ``hard=False`` each task gets its own (soft sharing, or single-task
    models when no penalty is added). ``make_body`` returns a module whose output has
    ``hidden`` features.
    """

    def __init__(
        self,
        classes: Mapping[str, int],
        make_body: Callable[[], nn.Module],
        hidden: int,
        hard: bool = True,
        weights: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if not classes:
            raise ValueError("MultiTaskNet: give at least one task in `classes`.")
        self.tasks = list(classes)
        self.hard = hard
        self.body = make_body() if hard else nn.ModuleDict({t: make_body() for t in self.tasks})
        self.heads = nn.ModuleDict({t: nn.Linear(hidden, n) for t, n in classes.items()})
        # learned task weights train with the network (one optimiser, one loop)
        self.weights = weights

    def _check(self, task: str) -> None:
        if task not in self.heads:
            raise ValueError(f"Unknown task {task!r}; this network has: {', '.join(self.tasks)}.")

    def body_of(self, task: str) -> nn.Module:
        """The body that ``task`` reads (the shared one under hard sharing)."""
        self._check(task)
        return self.body if self.hard else self.body[task]

    def forward(self, task: str, x: torch.Tensor) -> torch.Tensor:
        body = self.body_of(task)  # first: an unknown task's error names the tasks (no KeyError)
        return self.heads[task](body(x))

    def network(self, task: str) -> list[nn.Parameter]:
        """``θ_t``: the parameters ``task``'s predictions depend on (body, then head)."""
        return [*self.body_of(task).parameters(), *self.heads[task].parameters()]


def soft_sharing_penalty(
    model: MultiTaskNet, lam: float | Mapping[tuple[str, str], float]
) -> torch.Tensor:
    """``Σ_{t<u} λ_tu ‖θ_t − θ_u‖²`` over the parameters two task networks have in the same shapes
    (the bodies, and the heads of tasks with equally many classes).

    ``lam`` is one ``λ`` for every pair or a dict ``(t, u) -> λ_tu`` (pairs not in it get 0), the
    hand-made encoding of which tasks are related.
    """
    if model.hard:
        raise ValueError("soft_sharing_penalty: the network shares its body already (hard=True).")
    total = torch.zeros(())
    for t, u in itertools.combinations(model.tasks, 2):
        weight = lam if not isinstance(lam, Mapping) else lam.get((t, u), lam.get((u, t), 0.0))
        if weight < 0:
            raise ValueError(f"soft_sharing_penalty: λ must be ≥ 0, got {weight} for {(t, u)}.")
        if weight == 0:
            continue
        for a, b in zip(model.network(t), model.network(u)):
            if a.shape == b.shape:
                total = total + weight * (a - b).pow(2).sum()
    return total


class UncertaintyWeights(nn.Module):
    """Learned task weights (Kendall, Gal & Cipolla 2018, eq. 10, the classification term
    ``L_t / σ_t² + log σ_t``): one ``s_t = log σ_t²`` per task (learned instead of ``σ_t`` for
    numerical stability, as the paper does), combined loss ``Σ_t exp(−s_t) L_t + s_t / 2``.

    A task whose loss stays high (noisy, or hard) earns a large ``σ_t`` and a small weight; the
    ``s_t / 2`` term stops every ``σ_t`` from growing without bound.
    """

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self.log_var = nn.Parameter(torch.zeros(len(self.tasks)))

    def forward(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        s = self.log_var
        return sum(torch.exp(-s[i]) * losses[t] + s[i] / 2 for i, t in enumerate(self.tasks))

    def weights(self) -> dict[str, float]:
        """The current weights ``exp(−s_t)``."""
        return {t: float(torch.exp(-v)) for t, v in zip(self.tasks, self.log_var.detach())}


def task_losses(model: MultiTaskNet, batch: TaskData) -> dict[str, torch.Tensor]:
    """Each task's mean cross-entropy on its part of ``batch``."""
    return {t: F.cross_entropy(model(t, x), y) for t, (x, y) in batch.items()}


def multitask_loss(
    model: MultiTaskNet,
    batch: TaskData,
    task_weights: Mapping[str, float] | None = None,
    lam: float | Mapping[tuple[str, str], float] = 0.0,
) -> torch.Tensor:
    """``Σ_t w_t L_t`` (uniform ``w_t = 1`` by default, learned when the model has
    :class:`UncertaintyWeights`) plus the soft-sharing penalty when ``lam`` is not 0."""
    losses = task_losses(model, batch)
    if model.weights is not None:
        total = model.weights(losses)
    else:
        w = task_weights or {}
        total = sum(w.get(t, 1.0) * loss for t, loss in losses.items())
    if lam:
        total = total + soft_sharing_penalty(model, lam)
    return total


def task_batches(
    data: TaskData, batch_size: int, generator: torch.Generator | None = None
) -> Iterator[dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """Endless batches holding ``batch_size`` rows of every task (all rows when a task has
    fewer), drawn with replacement: every step sees every task once."""
    for t, (x, y) in data.items():
        if len(x) != len(y) or len(x) == 0:
            raise ValueError(f"Task {t!r}: {len(x)} inputs and {len(y)} labels; need as many, > 0.")
    while True:
        out = {}
        for t, (x, y) in data.items():
            if batch_size >= len(x):
                out[t] = (x, y)
            else:
                idx = torch.randint(len(x), (batch_size,), generator=generator)
                out[t] = (x[idx], y[idx])
        yield out


def fit_multitask(
    model: MultiTaskNet,
    data: TaskData,
    *,
    steps: int,
    lr: float = 3e-3,
    batch_size: int = 64,
    lam: float | Mapping[tuple[str, str], float] = 0.0,
    task_weights: Mapping[str, float] | None = None,
    weight_decay: float = 1e-2,
    seed: int = 0,
    progress: bool = True,
) -> History:
    """Train ``model`` on every task of ``data`` at once with :func:`multitask_loss`."""
    unknown = set(data) - set(model.tasks)
    if unknown:
        raise ValueError(
            f"fit_multitask: data for {sorted(unknown)} but the network's tasks are "
            f"{model.tasks}; build the MultiTaskNet with a head for each."
        )
    g = torch.Generator().manual_seed(seed)
    return fit(
        model,
        task_batches(data, batch_size, g),
        lambda m, b: multitask_loss(m, b, task_weights, lam),
        steps=steps,
        lr=lr,
        weight_decay=weight_decay,
        progress=progress,
        desc="multi-task training",
    )


@torch.no_grad()
def task_accuracy(model: MultiTaskNet, task: str, x: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy of ``task``'s head on ``(x, y)``, in eval mode (no dropout)."""
    was = model.training
    model.eval()
    acc = (model(task, x).argmax(-1) == y).float().mean().item()
    model.train(was)
    return acc
