"""Self-checks for chapter 11 (multi-task learning and in-context learning):
``tlcourse.checks.multitask.<exercise>``."""

from __future__ import annotations

import itertools
from typing import Callable

import torch

from .. import icl
from . import Case, CheckResult, _not_callable, compare_to_reference
from .selfsup import _loss_and_gradients


def _penalty(networks: list[list[torch.Tensor]], lam: float) -> torch.Tensor:
    """The reference: ``Σ_{t<u} λ ‖θ_t − θ_u‖²``, every tensor of a network counted."""
    total = torch.zeros((), dtype=torch.float64)
    for t, u in itertools.combinations(range(len(networks)), 2):
        for a, b in zip(networks[t], networks[u]):
            total = total + lam * (a - b).pow(2).sum()
    return total


def _uncertainty(losses: torch.Tensor, log_vars: torch.Tensor) -> torch.Tensor:
    """The reference: ``Σ_t exp(−s_t) L_t + s_t / 2`` (Kendall, Gal & Cipolla 2018, eq. 10)."""
    return (torch.exp(-log_vars) * losses + log_vars / 2).sum()


def _penalty_and_gradients(fn: Callable) -> Callable:
    """``fn(networks, lam)`` seen through :func:`_loss_and_gradients`: the penalty and its gradient
    with respect to every tensor ``theta_t[k]`` (tensor ``k`` of network ``t``, counted from 1)."""

    def run(networks, lam):
        sizes = [len(net) for net in networks]
        names = tuple(f"theta_{t}[{k}]" for t, size in enumerate(sizes, 1) for k in range(size))

        def on_tensors(*tensors):
            it = iter(tensors)
            value = fn([[next(it) for _ in range(size)] for size in sizes], lam)
            if (
                lam == 0
                and isinstance(value, torch.Tensor)
                and value.dim() == 0
                and not value.requires_grad
            ):
                # a constant for lambda = 0 is right (nothing pulls): its gradient is 0
                value = value + sum(0 * x.sum() for x in tensors)
            return value

        return _loss_and_gradients(on_tensors, names)(*(x for net in networks for x in net))

    return run


def soft_sharing_penalty(fn: Callable) -> CheckResult:
    """Exercise 11.1: ``fn(networks, lam) -> scalar tensor``: soft parameter sharing's penalty
    ``Σ_{t<u} λ ‖θ_t − θ_u‖²`` (Evgeniou & Pontil 2004; Duong et al. 2015). ``networks`` is a list
    of ``T`` task networks, each a list of tensors (network ``t``'s parameters ``θ_t``), the
    networks' tensors of matching shapes; ``lam`` is a float. Each pair of networks counts once, and
    the squared distance between two networks sums over all their tensors. Checked on the value
    and on its autograd gradient with respect to every tensor."""
    if not callable(fn):  # before it is wrapped below
        return _not_callable("soft_sharing_penalty", fn)
    g = torch.Generator().manual_seed(11)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    def tensor(*values: float) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float64)

    shapes = [(4, 3), (4,), (2, 4), (2,)]  # a body's weight and bias, a head's weight and bias
    network = randn(3, 5)
    cases = [
        Case(([[tensor(3.0, 4.0)], [tensor(0.0, 0.0)]], 1.0), label="two networks 5 apart"),
        Case(([[tensor(3.0, 4.0)], [tensor(0.0, 0.0)]], 0.3), label="lambda = 0.3"),
        Case(([[randn(5)], [randn(5)], [randn(5)]], 0.5), label="three networks"),
        Case(
            ([[randn(*s) for s in shapes] for _ in range(2)], 0.8),
            label="several tensors per network",
        ),
        Case(([[randn(3, 2), randn(2)] for _ in range(3)], 0.0), label="lambda = 0"),
        Case(([[network.clone()], [network.clone()]], 2.0), label="identical networks"),
        Case(
            ([[randn(*s) for s in shapes] for _ in range(4)], 1.7),
            label="four networks of four tensors",
        ),
    ]
    hints = {
        "two networks 5 apart": "theta_1 - theta_2 = (3, 4): the distance is 5, the squared "
        "distance 25, so with lambda = 1 the penalty is 25 and its gradient wrt theta_1 is "
        "2 lambda (theta_1 - theta_2) = (6, 8). 50 means you counted the pair twice (sum over "
        "t < u, each pair once, not over all t != u); 5 means you forgot the square (the norm, "
        "not the squared norm); 12.5 means you averaged over the entries (sum the squares, "
        "not their mean)",
        "lambda = 0.3": "multiply by lambda: 0.3 * 25 = 7.5",
        "three networks": "three networks make three pairs, (1, 2), (1, 3) and (2, 3): sum the "
        "penalty over all of them (itertools.combinations(range(T), 2)), not their mean, and "
        "not only neighbours or pairs with the first network",
        "several tensors per network": "the distance between two networks sums over all of "
        "their tensors: sum_k ||theta_t[k] - theta_u[k]||^2 (zip the two lists), every "
        "tensor, not only the first",
        "lambda = 0": "with lambda = 0 nothing pulls the networks together: the penalty and its "
        "gradients are 0",
        "identical networks": "identical networks are not pulled: penalty 0, gradient 0. A NaN "
        "gradient comes from a square root squared again (torch.sqrt has an infinite slope at "
        "0): sum the squared differences directly",
    }
    return compare_to_reference(
        "soft_sharing_penalty",
        _penalty_and_gradients(fn),
        _penalty_and_gradients(_penalty),
        cases,
        hints,
        rtol=1e-6,
        atol=1e-9,
    )


def uncertainty_loss(fn: Callable) -> CheckResult:
    """Exercise 11.2: ``fn(losses, log_vars) -> scalar tensor``: the tasks' losses weighted by
    learned uncertainty (Kendall, Gal & Cipolla 2018, eq. 10, with ``s_t = log σ_t²``):
    ``Σ_t exp(−s_t) L_t + s_t / 2`` for a 1-D tensor ``losses`` of the ``T`` task losses ``L_t``
    and a 1-D tensor ``log_vars`` of the ``s_t``. Checked on the value and on its autograd
    gradients with respect to both."""
    if not callable(fn):  # before it is wrapped below
        return _not_callable("uncertainty_loss", fn)
    g = torch.Generator().manual_seed(11)

    def tensor(*values: float) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float64)

    cases = [
        Case((tensor(0.5, 1.5, 2.0), tensor(0.0, 0.0, 0.0)), label="s = 0: every weight 1"),
        Case(
            (
                torch.rand(4, generator=g, dtype=torch.float64) * 3,
                torch.randn(4, generator=g, dtype=torch.float64),
            ),
            label="random losses and log variances",
        ),  # fmt: skip
        Case((tensor(0.2, 6.0), tensor(-1.5, 2.5)), label="a noisy task (large s)"),
        Case((tensor(0.9), tensor(0.4)), label="one task"),
    ]
    hints = {
        "s = 0: every weight 1": "at s = 0 every weight exp(-s_t) is 1: the value is the sum of "
        "the losses, 4, summed over the tasks, not averaged (2 means you halved the weights: the "
        "weight is exp(-s_t), not exp(-s_t) / 2); the gradient wrt s_t is "
        "-exp(-s_t) L_t + 1/2 = -L_t + 1/2, here (0, -1, -1.5). +L_t + 1/2 means exp(s) instead of "
        "exp(-s) (a task with a large loss must get a small weight); -L_t means the s/2 term is "
        "missing (without it every s runs off to +infinity and every weight to 0); "
        "-L_t + 1 means s instead of s/2",
        "random losses and log variances": "sum over the tasks of exp(-s_t) * L_t + s_t / 2",
        "a noisy task (large s)": "the weight is exp(-s_t), so the noisy task (s = 2.5) "
        "counts exp(-2.5) = 0.08 times its loss; the regulariser is s_t / 2, which may be negative",
    }
    names = ("losses", "log_vars")
    return compare_to_reference(
        "uncertainty_loss",
        _loss_and_gradients(fn, names),
        _loss_and_gradients(_uncertainty, names),
        cases,
        hints,
        rtol=1e-6,
        atol=1e-9,
    )


def _prompts(batch: int, n: int, dim: int, seed: int, noise: float = 0.0) -> tuple:
    """``batch`` prompts of ``n`` points from chapter 11's linear-regression class, in float64
    (the reference's pseudo-inverse then agrees with any stable solver to ~1e-12)."""
    xs, ys = icl.sample_tasks(batch, n - 1, dim, torch.Generator().manual_seed(seed), noise=noise)
    return xs.double(), ys.double()


def _unseen_direction(batch: int, n: int, dim: int, seed: int) -> tuple:
    """Noiseless prompts whose examples all have first coordinate exactly 0 while the last point's
    does not: every prefix is rank-deficient, and the minimum-norm ``w`` is 0 along that axis. (The
    zero column comes first: torch's default CPU ``lstsq`` driver, gelsy, then fails on it
    reliably, not just now and then, while its pivoting buffer is left uninitialised, PyTorch
    issues #71222 and #187411.)"""
    g = torch.Generator().manual_seed(seed)
    xs = torch.randn(batch, n, dim, generator=g, dtype=torch.float64)
    xs[:, :-1, 0] = 0
    w = torch.randn(batch, dim, 1, generator=g, dtype=torch.float64)
    return xs, (xs @ w).squeeze(-1)


def least_squares(fn: Callable) -> CheckResult:
    """Exercise 11.3: ``fn(xs, ys) -> (batch, n)`` for ``xs`` ``(batch, n, dim)`` and ``ys``
    ``(batch, n)``: column ``i`` predicts ``ys[:, i]`` as ``x_i . w`` with ``w`` the minimum-norm
    least-squares fit to the first ``i`` points alone (``w = pinv(X_{<i}) y_{<i}``), and column 0,
    with no points to fit, is 0: the baseline the in-context learner is compared with (Garg et al.
    2022), as ``tlcourse.icl.least_squares``."""
    worked = torch.tensor([[[1.0], [2.0], [3.0], [4.0]]], dtype=torch.float64)
    cases = [
        Case((worked, 2 * worked[..., 0]), label="worked example: y = 2x in one dimension"),
        Case(_prompts(3, 5, 6, seed=2), label="fewer points than dimensions"),
        Case(_prompts(4, 8, 3, seed=1), label="noiseless, more points than dimensions"),
        Case(_prompts(4, 10, 3, seed=3, noise=0.5), label="noisy labels"),
        Case(_prompts(5, 6, 1, seed=4, noise=0.1), label="one dimension"),
        Case(_prompts(1, 7, 4, seed=5, noise=0.2), label="one prompt (batch 1)"),
        Case(_unseen_direction(3, 6, 3, seed=6), label="a direction no example covers"),
    ]
    fit_first_i = (
        "column i fits w to points 0 .. i-1 alone (xs[:, :i], ys[:, :i]) and predicts x_i . w"
    )
    hints = {
        "worked example: y = 2x in one dimension": "xs = 1, 2, 3, 4 and ys = 2, 4, 6, 8: "
        "expected (0, 4, 6, 8). The output is (batch, n), one prediction x_i . w per point, not "
        "w itself. Column 0 must be 0: it predicts y_0 from no points at all (w = 0 before any "
        "evidence); 2 there means column 0 was never set to 0 or its prediction used y_0 "
        "itself. Column 1 fits w to point 0 alone (w = y_0 / x_0 = 2) and predicts 2 * x_1 = 4: "
        "0 there means you fitted on one point too few (xs[:, :i-1]); 2 means you multiplied w "
        "by x_{i-1} instead of the point's own x_i. " + fit_first_i,
        "fewer points than dimensions": "with fewer points than dimensions many w fit the points "
        "exactly: take the one of least norm, w = pinv(X) y (torch.linalg.pinv). A singular "
        "matrix error means the normal equations: X^T X is singular here, so solve(X^T X, X^T y) "
        "fails. A prediction equal to y_i means the prediction for point i used y_i (a prefix up "
        "to i inclusive, xs[:, :i+1], or all n points): " + fit_first_i,
        "noiseless, more points than dimensions": "with fewer than dim = 3 points w is not pinned "
        "down, so columns 1 and 2 cannot be exact: if yours equal y_i there, the prediction for "
        "point i used y_i (a prefix up to i inclusive, xs[:, :i+1], or all n points): "
        + fit_first_i,
        "noisy labels": "with noise no prediction is exact: if yours match y_i, the prediction for "
        "point i used y_i. " + fit_first_i,
        "one dimension": "dim = 1: w = sum_j x_j y_j / sum_j x_j^2 over the points j < i",
        "one prompt (batch 1)": "keep the batch dimension: (1, n) in, (1, n) out",
        "a direction no example covers": "the examples' first coordinate is 0, the last point's "
        "is not: the points are rank-deficient, and the minimum-norm w puts 0 on the direction no "
        "example has seen. torch.linalg.lstsq assumes full rank with driver='gels', and its "
        "default CPU driver 'gelsy' can return a wrong w on rank-deficient inputs (PyTorch "
        "issue #71222): use torch.linalg.pinv (or lstsq with driver='gelsd')",
    }
    return compare_to_reference(
        "least_squares", fn, icl.least_squares, cases, hints, rtol=1e-4, atol=1e-5
    )
