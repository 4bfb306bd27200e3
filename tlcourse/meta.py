"""Chapter 7: meta-learning — MAML, first-order MAML, Reptile and Prototypical Networks.

Meta-learning optimises an initialisation (or an embedding) for *fast adaptation* across a
distribution of tasks p(T), instead of for one task (Finn, Abbeel & Levine 2017, ICML; Nichol,
Achiam & Schulman 2018; Snell, Swersky & Zemel 2017, NeurIPS).

* :class:`Sinusoids` samples the regression tasks of the MAML paper (section 5.1);
* :func:`adapt` is the inner loop, A_phi(D) = phi - alpha grad_phi L(phi; D), repeated ``steps``
  times;
* :func:`meta_gradient` is the MAML meta-gradient (eq. 1 of the paper, second order, or first
  order), one task per ``vmap`` lane; :func:`meta_gradient_loop` computes the same with a Python
  loop over tasks;
* :func:`reptile_direction` is Reptile's update direction, mean(phi~) - phi;
* :func:`prototypes` and :func:`proto_logits` are Prototypical Networks (eqs. 1-2 of Snell et al.);
* :func:`fit_linear_heads` fits an L2-regularised logistic-regression head on each episode's support
  features, batched over episodes: the frozen-feature baseline of Tian et al. (2020);
* :func:`conv4` is the 4-block convolutional embedding all three papers use for Omniglot.

Parameters are handled functionally, as a dict ``name -> tensor``
(``dict(model.named_parameters())``), and evaluated with :func:`torch.func.functional_call`, so that
the adapted weights of every task can be computed in one batched (``vmap``) call without copying the
model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from .train import History, progress_bar

Params = dict[str, torch.Tensor]
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
METHODS = ("maml", "fomaml", "reptile")


@dataclass(frozen=True)
class Sinusoids:
    """The sinusoid task family of Finn et al. (2017, section 5.1): y = A sin(x - b), A ~ U[0.1, 5],
    b ~ U[0, pi], x ~ U[-5, 5]. A task is (A, b); an episode has K support and ``query`` query
    points."""

    amplitude: tuple[float, float] = (0.1, 5.0)
    phase: tuple[float, float] = (0.0, math.pi)
    x_range: tuple[float, float] = (-5.0, 5.0)

    def tasks(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` tasks: amplitudes and phases, each of shape ``(n,)``."""
        lo, hi = self.amplitude
        amp = lo + (hi - lo) * torch.rand(n, generator=generator)
        lo, hi = self.phase
        return amp, lo + (hi - lo) * torch.rand(n, generator=generator)

    def points(
        self, amp: torch.Tensor, phase: torch.Tensor, k: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``k`` random points of each task: x and y of shape ``(tasks, k, 1)``."""
        lo, hi = self.x_range
        x = lo + (hi - lo) * torch.rand(len(amp), k, 1, generator=generator)
        return x, amp[:, None, None] * torch.sin(x - phase[:, None, None])

    def mean_function(self, x: torch.Tensor) -> torch.Tensor:
        """E[y | x] over the family: E[A] E_b[sin(x - b)] = E[A] (cos(x - b_max) - cos(x - b_min)) /
        (b_max - b_min), the best prediction anyone can make without seeing a task's points (for the
        defaults, -1.62 cos x)."""
        (a0, a1), (b0, b1) = self.amplitude, self.phase
        return (a0 + a1) / 2 * (torch.cos(x - b1) - torch.cos(x - b0)) / (b1 - b0)

    def episodes(
        self, n: int, k: int, query: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, ...]:
        """``(xs, ys, xq, yq)`` for ``n`` new tasks: ``k`` support and ``query`` query points
        each."""
        if k < 1 or query < 1:
            raise ValueError(
                f"Sinusoids.episodes: need k >= 1 and query >= 1, got k={k}, query={query}."
            )
        amp, phase = self.tasks(n, generator)
        return self.points(amp, phase, k, generator) + self.points(amp, phase, query, generator)


def regressor(hidden: int = 40) -> torch.nn.Module:
    """The MAML paper's sinusoid network: 1 -> 40 -> 40 -> 1 with ReLU."""
    return torch.nn.Sequential(
        torch.nn.Linear(1, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, 1),
    )


def params_of(model: torch.nn.Module) -> Params:
    """The model's trainable parameters as a dict, the form the functional code below takes."""
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def task_loss(
    model: torch.nn.Module,
    params: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    loss: Loss = F.mse_loss,
) -> torch.Tensor:
    """L(phi; D): the loss of the model with weights ``params`` on the points ``(x, y)``."""
    return loss(functional_call(model, params, (x,)), y)


def adapt(
    model: torch.nn.Module,
    params: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    lr: float,
    steps: int = 1,
    loss: Loss = F.mse_loss,
    first_order: bool = False,
) -> Params:
    """The inner loop (Finn et al. eq. 1): ``steps`` gradient steps phi <- phi - lr grad
    L(phi; (x, y)).

    The result stays differentiable with respect to ``params`` (the meta-gradient goes through the
    inner gradients, which brings in second derivatives) unless ``first_order`` detaches them.
    """
    if steps < 0:
        raise ValueError(f"adapt: steps must be >= 0, got {steps}.")
    for _ in range(steps):
        g = grad(task_loss, argnums=1)(model, params, x, y, loss)
        params = {k: p - lr * (g[k].detach() if first_order else g[k]) for k, p in params.items()}
    return params


def _check_batch(xs, ys, xq, yq) -> None:
    if not (len(xs) == len(ys) == len(xq) == len(yq)):
        raise ValueError(
            f"meta-batch: support and query must hold the same number of tasks, got "
            f"{[len(t) for t in (xs, ys, xq, yq)]} (shapes are (tasks, points, ...))."
        )


def meta_gradient(
    model: torch.nn.Module,
    params: Params,
    batch: tuple[torch.Tensor, ...],
    lr: float,
    steps: int = 1,
    method: str = "maml",
    loss: Loss = F.mse_loss,
) -> tuple[Params, torch.Tensor]:
    """The MAML meta-gradient of the mean query loss after adaptation, over a meta-batch of tasks.

    ``batch = (xs, ys, xq, yq)``, each of shape ``(tasks, points, ...)``. ``method="maml"``
    differentiates through the inner loop (grad of L(A_phi(D_support); D_query), second order);
    ``"fomaml"`` treats the inner gradients as constants, so the meta-gradient is the query gradient
    at the adapted weights. Each task is one lane of ``torch.func.vmap``. Returns ``(gradients, mean
    query loss after adaptation)``.
    """
    if method not in ("maml", "fomaml"):
        raise ValueError(
            f"meta_gradient: unknown method {method!r}; "
            "use 'maml' or 'fomaml' (Reptile: reptile_direction)."
        )
    _check_batch(*batch)
    first_order = method == "fomaml"

    def query_loss(p, xs, ys, xq, yq):
        return task_loss(model, adapt(model, p, xs, ys, lr, steps, loss, first_order), xq, yq, loss)

    def mean_query_loss(p, xs, ys, xq, yq):
        per_task = vmap(query_loss, in_dims=(None, 0, 0, 0, 0), randomness="same")(
            p, xs, ys, xq, yq
        )
        return per_task.mean(), per_task.mean()

    grads, value = grad(mean_query_loss, has_aux=True)(
        {k: v.detach() for k, v in params.items()}, *batch
    )
    return grads, value.detach()


def meta_gradient_loop(
    model: torch.nn.Module,
    params: Params,
    batch: tuple[torch.Tensor, ...],
    lr: float,
    steps: int = 1,
    method: str = "maml",
    loss: Loss = F.mse_loss,
) -> tuple[Params, torch.Tensor]:
    """The same meta-gradient as :func:`meta_gradient`, one task at a time with ``torch.autograd``:
    the textbook implementation (``create_graph=True`` keeps the inner step differentiable)."""
    if method not in ("maml", "fomaml"):
        raise ValueError(f"meta_gradient_loop: unknown method {method!r}; use 'maml' or 'fomaml'.")
    _check_batch(*batch)
    leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    total = 0.0
    for xs, ys, xq, yq in zip(*batch):
        fast = leaves
        for _ in range(steps):
            g = torch.autograd.grad(
                loss(functional_call(model, fast, (xs,)), ys),
                list(fast.values()),
                create_graph=method == "maml",
            )
            fast = {k: p - lr * gk for (k, p), gk in zip(fast.items(), g)}
        total = total + loss(functional_call(model, fast, (xq,)), yq)
    mean = total / len(batch[0])
    grads = torch.autograd.grad(mean, list(leaves.values()))
    return dict(zip(leaves, grads)), mean.detach()


def reptile_direction(
    model: torch.nn.Module,
    params: Params,
    xs: torch.Tensor,
    ys: torch.Tensor,
    lr: float,
    steps: int,
    loss: Loss = F.mse_loss,
) -> tuple[Params, torch.Tensor]:
    """Reptile (Nichol et al. 2018, algorithm 2): adapt to every task with ``steps`` SGD steps on
    its points, and return mean(phi~) - phi, the direction the initialisation moves in (and the mean
    loss before adaptation). No query set, no second derivatives."""
    params = {k: v.detach() for k, v in params.items()}
    adapted = vmap(lambda x, y: adapt(model, params, x, y, lr, steps, loss), randomness="same")(
        xs, ys
    )
    before = vmap(lambda x, y: task_loss(model, params, x, y, loss))(xs, ys).mean()
    return {k: adapted[k].mean(0) - params[k] for k in params}, before


def meta_train(
    model: torch.nn.Module,
    episodes: Iterator[tuple[torch.Tensor, ...]],
    *,
    method: str,
    iterations: int,
    inner_lr: float,
    inner_steps: int = 1,
    meta_lr: float = 1e-3,
    loss: Loss = F.mse_loss,
    progress: bool = True,
    desc: str | None = None,
) -> History:
    """Meta-train ``model`` in place: ``iterations`` meta-batches from ``episodes``
    (``(xs, ys, xq, yq)``).

    MAML and first-order MAML step Adam (learning rate ``meta_lr``) along the meta-gradient, as
    Finn et al. do. Reptile uses the direction mean(phi~) - phi as a negative gradient for the same
    Adam (Nichol et al.'s "Reptile with Adam"). ``History.loss`` holds the mean query loss after
    adaptation (MAML) or the mean support loss before it (Reptile).
    """
    if method not in METHODS:
        raise ValueError(
            f"meta_train: unknown method {method!r}; the methods are {', '.join(METHODS)}."
        )
    params = params_of(model)
    opt = torch.optim.Adam(params.values(), lr=meta_lr)
    history = History()
    bar = progress_bar(
        range(1, iterations + 1), progress=progress, desc=desc or method, leave=False
    )
    for step in bar:
        batch = next(episodes)
        if method == "reptile":
            direction, value = reptile_direction(
                model, params, batch[0], batch[1], inner_lr, inner_steps, loss
            )
            grads = {k: -d for k, d in direction.items()}
        else:
            grads, value = meta_gradient(model, params, batch, inner_lr, inner_steps, method, loss)
        for k, p in params.items():
            p.grad = grads[k]
        opt.step()
        history.steps.append(step)
        history.loss.append(float(value))
        if step % 50 == 0:
            bar.set_postfix(loss=f"{history.loss[-1]:.3f}")
    return history


def adaptation_curve(
    model: torch.nn.Module,
    batch: tuple[torch.Tensor, ...],
    lr: float,
    max_steps: int,
    loss: Loss = F.mse_loss,
    optimizer: str = "sgd",
) -> list[float]:
    """Mean query loss over the tasks of ``batch`` after 0, 1, ..., ``max_steps`` steps of plain
    gradient descent on each task's support points (Finn et al. figure 2, "k grad steps")."""
    xs, ys, xq, yq = batch
    params = {k: v.detach() for k, v in params_of(model).items()}

    def curve(x, y, qx, qy):
        out, p = [task_loss(model, params, qx, qy, loss)], params
        for _ in range(max_steps):
            p = adapt(model, p, x, y, lr, 1, loss, first_order=True)
            out.append(task_loss(model, p, qx, qy, loss))
        return torch.stack(out)

    return vmap(curve, randomness="same")(xs, ys, xq, yq).mean(0).tolist()


def conv4(channels: int = 64, out_features: int | None = None) -> torch.nn.Sequential:
    """The Omniglot network of Vinyals et al. (2016), used by MAML and ProtoNets: four blocks of
    3x3 convolution, batch norm, ReLU and 2x2 max-pooling (28x28 -> 1x1), flattened to ``channels``
    features; with ``out_features`` a linear classifier on top (MAML, and the transfer baseline).

    Batch norm uses the statistics of the current batch in training and evaluation alike
    (``track_running_stats=False``), as in MAML's reference code: no state outside the parameters,
    so the functional inner loop and ``vmap`` over tasks need no special care.
    """
    layers: list[torch.nn.Module] = []
    for i in range(4):
        layers += [
            torch.nn.Conv2d(1 if i == 0 else channels, channels, 3, padding=1),
            torch.nn.BatchNorm2d(channels, track_running_stats=False),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
        ]
    layers.append(torch.nn.Flatten())
    if out_features is not None:
        layers.append(torch.nn.Linear(channels, out_features))
    return torch.nn.Sequential(*layers)


def prototypes(support: torch.Tensor, labels: torch.Tensor, n_way: int) -> torch.Tensor:
    """Snell et al. eq. 1: the prototype of class c is the mean embedding of its support examples.
    ``support`` is ``(n, d)``, ``labels`` in ``0 .. n_way-1``; returns ``(n_way, d)``."""
    if support.dim() != 2 or labels.shape != support.shape[:1]:
        raise ValueError(
            f"prototypes: expected embeddings (n, d) and labels (n,), got {tuple(support.shape)} "
            f"and {tuple(labels.shape)}."
        )
    onehot = F.one_hot(labels, n_way).to(support.dtype)
    counts = onehot.sum(0)
    if (counts == 0).any():
        raise ValueError(
            f"prototypes: classes {torch.nonzero(counts == 0).flatten().tolist()} "
            "have no support example."
        )
    return onehot.T @ support / counts[:, None]


def proto_logits(query: torch.Tensor, protos: torch.Tensor) -> torch.Tensor:
    """Snell et al. eq. 2: logits are negative squared Euclidean distances to the prototypes, so
    that the softmax over them is p(y = c | x). ``(q, d), (n_way, d) -> (q, n_way)``."""
    return -torch.cdist(query, protos).pow(2)


def fit_linear_heads(
    support: torch.Tensor,
    labels: torch.Tensor,
    n_way: int,
    c: float = 1.0,
    max_iter: int = 200,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression on frozen features, one head per episode (Tian et al. 2020,
    the "linear classifier on a pretrained embedding" baseline; chapter 7).

    ``support`` is ``(episodes, n, d)``, ``labels`` ``(episodes, n)`` in ``0 .. n_way-1``. Each
    episode's head minimises c * sum_i CE(W x_i + b, y_i) + ||W||^2 / 2, the objective of
    scikit-learn's ``LogisticRegression(C=c)`` (bias not penalised). It is strictly convex in W,
    so the optimum does not depend on the solver; the episodes' objectives are independent, so one
    L-BFGS run on their sum fits them all at once. Returns ``W (episodes, n_way, d)`` and
    ``b (episodes, n_way)``.
    """
    if support.dim() != 3 or labels.shape != support.shape[:2]:
        raise ValueError(
            f"fit_linear_heads: expected support (episodes, n, d) and labels (episodes, n), got "
            f"{tuple(support.shape)} and {tuple(labels.shape)}."
        )
    x = support.detach().double()
    w = torch.zeros(x.shape[0], n_way, x.shape[2], dtype=x.dtype, requires_grad=True)
    b = torch.zeros(x.shape[0], n_way, dtype=x.dtype, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w, b],
        max_iter=max_iter,
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
        line_search_fn="strong_wolfe",
    )

    def objective():
        opt.zero_grad()
        logits = torch.einsum("end,ekd->enk", x, w) + b[:, None, :]
        value = c * F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="sum")
        value = value + 0.5 * w.pow(2).sum()
        value.backward()
        return value

    with torch.enable_grad():
        opt.step(objective)
    return w.detach().to(support.dtype), b.detach().to(support.dtype)
