"""Self-checks for chapter 9 (fine-tuning strategies): ``tlcourse.checks.finetuning.<exercise>``."""

from __future__ import annotations

import hashlib
from typing import Callable

import torch

from . import (
    Case,
    CheckResult,
    _call,
    _inputs,
    _not_callable,
    _report,
    compare_to_reference,
    summarize,
)


def _reference_rates(lr: float, decay: float, n_layers: int) -> list[float]:
    return [lr / decay ** (n_layers - depth) for depth in range(n_layers + 1)]


def layer_rates(fn: Callable) -> CheckResult:
    """Exercise 9.1: ``fn(lr, decay, n_layers) -> [rate of the embeddings, of layer 0, ...,
    of layer n_layers - 1]``: ULMFiT's discriminative rates, ``lr`` for the top layer and each
    block below divided by ``decay`` once more (Howard & Ruder 2018, eq. 2)."""
    cases = [
        Case((1e-3, 2.6, 6), label="MiniLM: 6 layers, the paper's 2.6"),
        Case((2e-5, 2.6, 12), label="BERT-base: 12 layers"),
        Case((1e-3, 1.0, 4), label="decay 1: one rate everywhere"),
        Case((0.1, 2.0, 1), label="one layer"),
    ]
    hints = {
        "MiniLM: 6 layers, the paper's 2.6": "7 rates, bottom first: the embeddings get "
        "lr / 2.6^6 and the top layer (layer 5) gets lr itself",
        "decay 1: one rate everywhere": "with decay 1 every block trains at lr",
        "one layer": "one encoder layer: [lr / decay, lr] (embeddings, layer 0)",
    }
    return compare_to_reference("layer_rates", fn, _reference_rates, cases, hints, rtol=1e-6)


def _reference_l2sp(params: dict, start: dict, lam: float) -> torch.Tensor:
    return lam * sum((params[n] - start[n]).pow(2).sum() for n in start)


def _penalty_and_gradient(fn: Callable) -> Callable:
    """Call ``fn`` on leaf copies of the parameters and return ``(penalty, d penalty / d params)``,
    so that the check sees both the value and what backpropagation makes of it."""

    def run(params: dict, start: dict, lam: float):
        leaves = {n: p.detach().clone().requires_grad_(True) for n, p in params.items()}
        value = fn(leaves, start, lam)
        if not isinstance(value, torch.Tensor) or value.dim() != 0:
            return value  # compare_to_reference reports the wrong type or shape
        value.backward()
        grads = [
            leaves[n].grad if leaves[n].grad is not None else torch.zeros_like(p)
            for n, p in params.items()
        ]
        return (value.detach(), *grads)

    return run


def l2sp_penalty(fn: Callable) -> CheckResult:
    """Exercise 9.2: ``fn(params, start, lam) -> lam * sum_n ||params[n] - start[n]||^2`` (a scalar
    tensor, summed over the names in ``start``; ``params`` may hold more, e.g. a new head, which is
    not pulled anywhere). Checked on the value and on its autograd gradient,
    ``2 lam (theta - theta0)``."""
    g = torch.Generator().manual_seed(9)

    def problem(shapes, extra: bool, lam: float, label: str) -> Case:
        start = {f"w{i}": torch.randn(s, generator=g) for i, s in enumerate(shapes)}
        params = {n: w + 0.1 * torch.randn(w.shape, generator=g) for n, w in start.items()}
        if extra:
            params["head"] = torch.randn(3, 4, generator=g)
        return Case((params, start, lam), label=label)

    cases = [
        problem([(4,)], False, 1.0, "one vector"),
        problem([(3, 5), (5,)], False, 0.1, "a layer: weight and bias"),
        problem([(3, 5), (5,)], True, 0.1, "a new head outside start"),
        Case(({"w0": torch.ones(3)}, {"w0": torch.ones(3)}, 0.5), label="at the start: penalty 0"),
    ]

    def reference(params, start, lam):
        return _penalty_and_gradient(_reference_l2sp)(params, start, lam)

    hints = {
        "one vector": "a squared distance, not a distance: no square root, and times lam",
        "a new head outside start": "sum over the names in start only: the new head has no "
        "pretrained value to be pulled back to (its gradient from the penalty is 0)",
        "at the start: penalty 0": "the penalty must be a scalar tensor built from params, so "
        "autograd can differentiate it",
    }
    return compare_to_reference(
        "l2sp_penalty", _penalty_and_gradient(fn), reference, cases, hints, rtol=1e-5, atol=1e-6
    )


# Lee et al. (ICLR 2023): which block to tune alone, for the two ends of their shift taxonomy. The
# accepted block of each kind is stored only as the digest (see _digest) of "kind|block".
SHIFT_KINDS = ("input", "output")
BLOCKS = ("first", "last")
_SALT = "tlcourse-surgical-1"
_ACCEPTED = frozenset({"a9373370f0044896", "d13940ca018e16dc"})


def _digest(kind: str, block: str) -> str:
    """The salted SHA-256 digest (16 hex digits) of one answer."""
    return hashlib.sha256(f"{_SALT}|{kind}|{block}".encode()).hexdigest()[:16]


def block_for_shift(fn: Callable) -> CheckResult:
    """Exercise 9.4: ``fn(kind) -> "first" | "last"``: the block to fine-tune alone (surgical
    fine-tuning) for an ``"input"``- or ``"output"``-level shift, as Lee et al. (2023) found."""
    name = "block_for_shift"
    if not callable(fn):
        return _not_callable(name, fn)
    cases = [Case((kind,), label=f"{kind}-level shift") for kind in SHIFT_KINDS]
    hints = {
        "input-level shift": "corrupted or misspelt inputs: what is off is how the lowest layers "
        "read the input; the features above them still mean the same",
        "output-level shift": "the same inputs with another labelling: the features are fine, "
        "the read-out is wrong",
    }
    for i, case in enumerate(cases, start=1):
        got, why = _call(fn, case)
        if why is None and got not in BLOCKS:
            why = f"expected one of {', '.join(map(repr, BLOCKS))}, got {summarize(got)}"
        elif why is None and _digest(case.args[0], got) not in _ACCEPTED:
            why = f"{got!r} is not the block Lee et al. found best for this shift"
        if why:
            text = (
                f"case {i}/{len(cases)} ({case.label}) failed: {why}\n"
                f"    inputs: {_inputs(case)}\n    hint: {hints[case.label]}"
            )
            return _report(name, False, text, case)
    return _report(name, True, f"all {len(cases)} cases match the reference")
