"""Self-checks for chapter 3 (ELMo): ``tlcourse.checks.elmo.<exercise>``."""

from __future__ import annotations

from typing import Callable

import torch

from .. import elmo
from . import Case, CheckResult, compare_to_reference


def _reference_mix(layers: torch.Tensor, w: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    module = elmo.ScalarMix(layers.shape[0])
    with torch.no_grad():
        module.w.copy_(w)
        module.gamma.copy_(gamma)
        return module(layers)


def scalar_mix(fn: Callable) -> CheckResult:
    """Exercise 3.1: ``fn(layers, w, gamma) -> γ Σ_j softmax(w)_j layers[j]``."""
    g = torch.Generator().manual_seed(0)
    cases = [
        Case(
            (torch.randn(3, 5, 4, generator=g), torch.randn(3, generator=g), torch.tensor(1.5)),
            label="3 layers of (5, 4)",
        ),
        Case(
            (torch.randn(7, 2, 3, 8, generator=g), torch.randn(7, generator=g), torch.tensor(0.7)),
            label="7 layers, 2 batch dims",
        ),
        Case(
            (torch.randn(2, 6, generator=g), torch.tensor([0.0, 0.0]), torch.tensor(1.0)),
            label="equal weights",
        ),
        Case(
            (torch.randn(3, 4, generator=g), torch.tensor([10.0, -10.0, -10.0]), torch.tensor(2.0)),
            label="one dominant layer",
        ),
    ]
    hints = {
        "3 layers of (5, 4)": (
            "normalise w with a softmax over the layer axis (dim 0), "
            "weight each layer, sum over layers, times gamma"
        ),
        "7 layers, 2 batch dims": "the weights must broadcast over every dimension after the first",
        "equal weights": (
            "w = 0 gives s = 1/L for every layer: the mix is gamma times the mean of the layers"
        ),
        "one dominant layer": "softmax, not w itself: s sums to one",
    }
    return compare_to_reference(
        "scalar_mix", fn, _reference_mix, cases, hints, rtol=1e-5, atol=1e-6
    )


def reverse_padded(fn: Callable) -> CheckResult:
    """Exercise 3.2: ``fn(x, lengths)`` reverses each row's first ``lengths[b]`` steps, padding in
    place."""
    g = torch.Generator().manual_seed(1)
    x = torch.arange(2 * 5 * 2, dtype=torch.float).view(2, 5, 2)
    cases = [
        Case((x, torch.tensor([5, 3])), label="one full row, one padded row"),
        Case((torch.randn(4, 6, 3, generator=g), torch.tensor([6, 1, 4, 2])), label="random batch"),
        Case(
            (torch.randn(3, 4, generator=g)[..., None], torch.tensor([4, 4, 4])), label="no padding"
        ),
    ]
    hints = {
        "one full row, one padded row": (
            "reverse x[b, :n] only; x[b, n:] (the padding) must stay where it was"
        ),
        "random batch": "a length-1 row is its own reverse; do not flip across the whole time axis",
        "no padding": "with every length equal to the time dimension this is torch.flip(x, [1])",
    }
    return compare_to_reference("reverse_padded", fn, elmo.reverse_padded, cases, hints)


def _reference_highway(
    x: torch.Tensor, transform: torch.nn.Linear, gate: torch.nn.Linear
) -> torch.Tensor:
    layer = elmo.Highway(x.shape[-1])
    layer.transform, layer.gate = transform, gate
    with torch.no_grad():
        return layer(x)


def highway(fn: Callable) -> CheckResult:
    """Exercise 3.3: ``fn(x, transform, gate) -> g·relu(transform(x)) + (1 - g)·x``,
    ``g = σ(gate(x))``."""
    torch.manual_seed(2)
    cases = []
    for dim, rows, label in ((4, 3, "random input"), (8, 1, "one row"), (6, 10, "many rows")):
        cases.append(
            Case(
                (torch.randn(rows, dim), torch.nn.Linear(dim, dim), torch.nn.Linear(dim, dim)),
                label=label,
            )
        )
    closed = torch.nn.Linear(3, 3)
    with torch.no_grad():
        closed.weight.zero_()
        closed.bias.fill_(-30.0)
    cases.append(Case((torch.randn(2, 3), torch.nn.Linear(3, 3), closed), label="gate closed"))
    hints = {
        "random input": "g = sigmoid(gate(x)); output = g * relu(transform(x)) + (1 - g) * x",
        "gate closed": "with the gate near 0 the layer must return x itself (the carry path)",
    }
    return compare_to_reference(
        "highway",
        fn,
        lambda x, t, gt: _reference_highway(x, t, gt),
        cases,
        hints,
        rtol=1e-5,
        atol=1e-6,
    )


def _mix_with(n_layers: int, w: list[float], gamma: float) -> elmo.ScalarMix:
    mix = elmo.ScalarMix(n_layers)
    with torch.no_grad():
        mix.w.copy_(torch.tensor(w))
        mix.gamma.fill_(gamma)
    return mix


def _reference_elmo_input(
    static: torch.Tensor, layers: torch.Tensor, mix: elmo.ScalarMix
) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([static, mix(layers)], dim=-1)


def elmo_input(fn: Callable) -> CheckResult:
    """Exercise 3.4: ``fn(static, layers, mix) -> [x_k; ELMo_k]``, the static vectors first
    (Peters et al. 2018, section 3.3)."""
    g = torch.Generator().manual_seed(3)
    cases = [
        Case(
            (
                torch.randn(5, 3, generator=g),
                torch.randn(3, 5, 4, generator=g),
                _mix_with(3, [0.5, -1.0, 2.0], 1.7),
            ),
            label="3 layers, uneven weights",
        ),
        Case(
            (
                torch.randn(1, 2, generator=g),
                torch.randn(2, 1, 6, generator=g),
                _mix_with(2, [0.0, 0.0], 1.0),
            ),
            label="one token, equal weights",
        ),
        Case(
            (
                torch.zeros(4, 3),
                torch.randn(3, 4, 2, generator=g),
                _mix_with(3, [3.0, 0.0, -3.0], 0.5),
            ),
            label="unknown words (zero static vectors)",
        ),
    ]
    hints = {
        "3 layers, uneven weights": (
            "mix the layers with the ScalarMix you are given (mix(layers)), then concatenate "
            "[static, mixed] along the last dimension"
        ),
        "one token, equal weights": "the static part comes first, the mixed biLM part second",
        "unknown words (zero static vectors)": (
            "only the biLM layers go through the mix; the static vectors are concatenated as is"
        ),
    }
    return compare_to_reference(
        "elmo_input", fn, _reference_elmo_input, cases, hints, rtol=1e-5, atol=1e-6
    )
