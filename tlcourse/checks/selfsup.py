"""Self-checks for chapter 10 (self-supervised pretraining):
``tlcourse.checks.selfsup.<exercise>``."""

from __future__ import annotations

import math
from typing import Callable

import torch

from .. import ssl
from . import Case, CheckResult, compare_to_reference, summarize


def _first(x: torch.Tensor, k: int = 3) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in x.detach().flatten()[:k].tolist()) + ", ...]"


class _LossAndGradients(dict):
    """A loss and its gradients, compared key by key, printed on one short line."""

    def __repr__(self) -> str:
        parts = []
        for key, value in self.items():
            if isinstance(value, torch.Tensor) and value.dim() == 0:
                parts.append(f"{key} {value.item():.6g}")
            elif isinstance(value, torch.Tensor) and key != "loss":
                parts.append(f"{key} {_first(value)}")
            elif value is not None:
                parts.append(f"{key} {summarize(value, 60)}")
        return "; ".join(parts)


class _TurnedAndLabels(tuple):
    """``(turned, labels)``, compared item by item, printed on one short line."""

    def __repr__(self) -> str:
        turned, labels = self
        if not isinstance(turned, torch.Tensor) or not isinstance(labels, torch.Tensor):
            return tuple.__repr__(self)
        shown = labels.flatten()[:12].tolist()
        more = ", ..." if labels.numel() > 12 else ""
        return f"turned: shape {tuple(turned.shape)}; labels {str(shown)[:-1]}{more}]"


# what a wrong type is told it should have returned ("expected a tuple (turned, labels), got ...")
_TurnedAndLabels.__name__ = "tuple (turned, labels)"


def _turned_and_labels(fn: Callable) -> Callable:
    def run(images):
        out = fn(images)
        return _TurnedAndLabels(out) if isinstance(out, (tuple, list)) and len(out) == 2 else out

    return run


def _loss_and_gradients(fn: Callable, names: tuple[str, ...]) -> Callable:
    """Call ``fn`` on leaf copies of its first ``len(names)`` (tensor) arguments and return
    ``{"loss": value, "gradient wrt <name>": d value / d argument, ...}``, so that the check sees
    both the loss and what backpropagation makes of it (a detached loss trains nothing)."""

    def run(*args):
        leaves = [a.detach().clone().requires_grad_(True) for a in args[: len(names)]]
        value = fn(*leaves, *args[len(names) :])
        out = _LossAndGradients(loss=value, **{f"gradient wrt {n}": None for n in names})
        if not isinstance(value, torch.Tensor) or value.dim() != 0:
            return out  # compare_to_reference reports the loss's wrong type or shape
        if not value.requires_grad:
            raise RuntimeError(
                "the loss is cut off from its inputs (.detach(), .item(), numpy or "
                "torch.no_grad on the way): no gradient reaches them, so nothing would train"
            )
        grads = torch.autograd.grad(value, leaves, allow_unused=True)
        out["loss"] = value.detach()
        for n, leaf, grad in zip(names, leaves, grads):
            out[f"gradient wrt {n}"] = torch.zeros_like(leaf) if grad is None else grad
        return out

    return run


def info_nce(fn: Callable) -> CheckResult:
    """Exercise 10.1: ``fn(scores) -> scalar tensor``: InfoNCE (van den Oord, Li & Vinyals 2018,
    eq. 4) of a ``(k, k)`` score matrix whose row ``i`` scores one context against ``k``
    candidates, the positive at column ``i``:
    ``L = -mean_i log( exp(s_ii) / sum_j exp(s_ij) )``. Checked on the value and on its autograd
    gradient with respect to ``scores``."""
    g = torch.Generator().manual_seed(10)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    cases = [
        Case((torch.full((5, 5), 0.7, dtype=torch.float64),), label="all scores equal"),
        Case((randn(4, 4),), label="random 4x4 scores"),
        Case((10 * torch.eye(6, dtype=torch.float64) + randn(6, 6),), label="a dominant diagonal"),
        Case((torch.tensor([[2.5]], dtype=torch.float64),), label="k = 1: the positive alone"),
        Case((1000 + randn(4, 4),), label="large scores (1000 + noise)"),
    ]
    hints = {
        "all scores equal": "with all scores equal every candidate is as likely: the loss is "
        f"log k (log 5 = {math.log(5):.4f}), the positive counted among the k candidates, "
        "and the mean over the rows, not their sum",
        "random 4x4 scores": "row i is a k-way classification: L = mean_i (logsumexp_j s_ij - "
        "s_ii), the softmax taken along each row (dim 1), the positive at column i",
        "a dominant diagonal": "when every positive scores far above its negatives, the loss is "
        "near 0 (and never negative)",
        "k = 1: the positive alone": "one candidate, the positive itself: it is picked for sure, "
        "the loss is 0",
        "large scores (1000 + noise)": "exp(1000) overflows to inf: use torch.logsumexp (or "
        "F.log_softmax / F.cross_entropy), which subtracts each row's maximum first, for "
        "numerical stability",
    }
    names = ("scores",)
    return compare_to_reference(
        "info_nce",
        _loss_and_gradients(fn, names),
        _loss_and_gradients(ssl.info_nce, names),
        cases,
        hints,
        rtol=1e-5,
        atol=1e-7,
    )


def nt_xent(fn: Callable) -> CheckResult:
    """Exercise 10.2: ``fn(z1, z2, temperature) -> scalar tensor``: SimCLR's NT-Xent loss (Chen et
    al. 2020, eq. 1). The ``2n`` projections are L2-normalised, ``s_ij = z_i . z_j / tau``, and
    each view picks its partner (the other view of its image) out of the ``2n - 1`` other views:
    ``l(i, j) = -log exp(s_ij) / sum_{k != i} exp(s_ik)``, averaged over all ``2n`` views. Checked
    on the value and on its autograd gradients with respect to ``z1`` and ``z2``."""
    g = torch.Generator().manual_seed(10)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    def unit(*shape: int) -> torch.Tensor:
        x = randn(*shape)
        return x / x.norm(dim=1, keepdim=True)

    cases = [
        Case((unit(1, 6), unit(1, 6), 0.5), label="one pair (n = 1)"),
        Case((unit(4, 8), unit(4, 8), 0.5), label="random unit vectors, n = 4, tau = 0.5"),
        Case((unit(4, 8), unit(4, 8), 0.1), label="tau = 0.1"),
        Case((3 * randn(4, 8), 0.2 * randn(4, 8), 0.5), label="unnormalised, different scales"),
        Case((randn(16, 32), randn(16, 32), 0.2), label="a larger batch, n = 16"),
    ]
    hints = {
        "one pair (n = 1)": "a view is never its own candidate: mask the diagonal with -inf. "
        "With one pair each view's only candidate is then its partner, and the loss is 0",
        "random unit vectors, n = 4, tau = 0.5": "stack the 2n views and normalise them "
        "(F.normalize(z, dim=1): without it even unit vectors get the wrong gradient), "
        "s = z z^T / tau with the diagonal masked, and average -log softmax(s_i)[partner of i] "
        "over all 2n views (the partner of i is i + n for the first n, i - n for the others)",
        "tau = 0.1": "use the temperature you are given: s_ij = cos(z_i, z_j) / temperature",
        "unnormalised, different scales": "normalise z1 and z2 first: the scores are cosine "
        "similarities (F.normalize(z, dim=1))",
    }
    names = ("z1", "z2")
    return compare_to_reference(
        "nt_xent",
        _loss_and_gradients(fn, names),
        _loss_and_gradients(ssl.nt_xent, names),
        cases,
        hints,
        rtol=1e-5,
        atol=1e-7,
    )


def _l_shapes(n: int, side: int) -> torch.Tensor:
    """``n`` copies of an "L" (a vertical stroke and a foot to the right): no turn or mirror of it
    is the same image, so a turn in the wrong direction shows."""
    images = torch.zeros(n, 1, side, side)
    images[:, 0, 1 : side - 1, 1] = 1.0
    images[:, 0, side - 2, 1 : side - 1] = 1.0
    return images


def rotations(fn: Callable) -> CheckResult:
    """Exercise 10.3: ``fn(images) -> (turned, labels)``: the rotation pretext task (Gidaris,
    Singh & Komodakis 2018). Each of the ``n`` square ``(n, 1, h, w)`` images turned by 0, 90, 180
    and 270 degrees counter-clockwise (``torch.rot90`` over the last two dimensions): all ``n``
    images at 0 degrees first, then all at 90, and so on; ``4n`` images labelled 0 (``n`` times),
    then 1, 2 and 3."""
    g = torch.Generator().manual_seed(10)
    cases = [
        Case((_l_shapes(1, 5),), label="one L-shaped image"),
        Case((torch.rand(3, 1, 6, 6, generator=g),), label="three random images"),
        Case(
            (torch.cat([_l_shapes(2, 28), (torch.rand(2, 1, 28, 28, generator=g) > 0.7).float()]),),
            label="a batch of four 28x28 characters",
        ),
    ]
    hints = {
        "one L-shaped image": "counter-clockwise: torch.rot90(x, r, dims=(-2, -1)) turns by "
        "r * 90 degrees (the other way round swaps the 90- and 270-degree images); the labels are "
        "0, 1, 2, 3 for 0, 90, 180 and 270 degrees",
        "three random images": "all n images at 0 degrees first, then all n at 90, 180 and 270 "
        "(torch.cat over r); the labels follow the same order: "
        "torch.arange(4).repeat_interleave(n), n zeros, then n ones, ...",
    }
    return compare_to_reference(
        "rotations", _turned_and_labels(fn), _turned_and_labels(ssl.rotations), cases, hints
    )
