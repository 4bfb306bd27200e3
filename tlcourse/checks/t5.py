"""Self-checks for chapter 5 (T5): ``tlcourse.checks.t5.<exercise>``."""

from __future__ import annotations

from typing import Callable

import torch

from .. import t5
from . import Case, CheckResult, compare_to_reference

SENTINELS = [900 - i for i in range(50)]  # like T5's vocabulary, where <extra_id_0> is the LAST id


def span_corrupt(fn: Callable) -> CheckResult:
    """Exercise 5.1: ``fn(ids, mask, sentinels) -> (inputs, targets)``, lists of ints.

    Each maximal run of ``True`` in ``mask`` becomes one sentinel in ``inputs`` (``sentinels[0]``
    for the first run, then ``sentinels[1]``, ...); ``targets`` is each sentinel followed by its
    run.
    """
    g = torch.Generator().manual_seed(5)

    def case(length, label, mask=None):
        ids = torch.randint(10, 800, (length,), generator=g).tolist()
        mask = t5.noise_mask(length, g).tolist() if mask is None else mask
        return Case((ids, mask, SENTINELS), label=label)

    cases = [
        case(12, "one span", [False] * 4 + [True] * 3 + [False] * 5),
        case(
            10,
            "two spans side by side",
            [False, True, True, False, True, False, False, False, False, False],
        ),
        case(8, "span at the start", [True, True] + [False] * 6),
        case(8, "span at the end", [False] * 6 + [True, True]),
        case(40, "random T5 mask"),
        case(200, "long random T5 mask"),
    ]
    hints = {
        "one span": (
            "replace the whole run of masked tokens by ONE sentinel; "
            "the target is the sentinel, then the run"
        ),
        "two spans side by side": (
            "a new span starts where the mask switches from False to True; use the next sentinel"
        ),
        "span at the start": "position 0 can start a span (there is no previous token to look at)",
        "span at the end": "the last run ends with the sequence: add nothing after it",
        "random T5 mask": (
            "sentinels are used in order: sentinels[0], "
            "sentinels[1], ... (not the sentinel ids sorted)"
        ),
    }
    return compare_to_reference("span_corrupt", fn, t5.corrupt_with_mask, cases, hints)


def _reference_rates(sizes, cap, temperature):
    return t5.mixing_rates(sizes, "temperature", cap=cap, temperature=temperature)


def mixing_rates(fn: Callable) -> CheckResult:
    """Exercise 5.2: ``fn(sizes, cap, temperature) -> {task: rate}``: examples-proportional rates
    with the size limit ``cap`` (None: no limit), raised to ``1 / temperature`` and renormalised."""
    sizes = {"sst2": 67_349, "rte": 2_490, "ag_news": 120_000}
    cases = [
        Case((sizes, None, 1.0), label="proportional"),
        Case((sizes, 10_000, 1.0), label="with a cap"),
        Case((sizes, None, 2.0), label="temperature 2"),
        Case((sizes, 2**14, 3.0), label="cap and temperature"),
        Case(({"a": 5, "b": 5}, None, 4.0), label="equal sizes"),
        Case(({"a": 100, "b": 1}, None, 1e6), label="very high temperature"),
    ]
    hints = {
        "proportional": "r_m = e_m / sum_n e_n",
        "with a cap": (
            "limit each size first: min(e_m, K); then divide by the sum of the limited sizes"
        ),
        "temperature 2": (
            "raise each (capped, normalised) rate to 1/T, then renormalise so the rates sum to 1"
        ),
        "very high temperature": "as T grows, every rate tends to 1/M",
    }
    return compare_to_reference(
        "mixing_rates", fn, _reference_rates, cases, hints, rtol=1e-9, atol=1e-12
    )


def _reference_logprob(logits, labels):
    logp = logits.log_softmax(-1).gather(-1, labels.clamp(min=0)[..., None])[..., 0]
    return logp.masked_fill(labels == -100, 0.0).sum(-1)


def sequence_logprob(fn: Callable) -> CheckResult:
    """Exercise 5.3: ``fn(logits, labels) -> (batch,)``: ``log p(target | input)``, the sum over the
    target's positions of the log-probability of its token; positions labelled -100 are padding."""
    g = torch.Generator().manual_seed(3)
    labels = torch.tensor([[5, 7, 1], [2, 1, -100], [9, -100, -100]])
    cases = [
        Case(
            (torch.randn(2, 3, 11, generator=g), torch.tensor([[5, 7, 1], [2, 3, 1]])),
            label="no padding",
        ),
        Case((torch.randn(3, 3, 11, generator=g), labels), label="padded targets"),
        Case((8 * torch.randn(3, 3, 11, generator=g), labels), label="large logits"),
        Case((torch.zeros(1, 2, 4), torch.tensor([[0, 3]])), label="uniform distribution"),
    ]
    hints = {
        "no padding": (
            "log_softmax over the vocabulary (last axis), "
            "pick each label's entry, sum over positions"
        ),
        "padded targets": (
            "positions with label -100 add nothing (and -100 is not a valid index: "
            "clamp or mask before gathering)"
        ),
        "large logits": "use log_softmax, not log(softmax(...)), which underflows",
        "uniform distribution": "with all logits equal each token has probability 1/vocabulary",
    }
    return compare_to_reference(
        "sequence_logprob", fn, _reference_logprob, cases, hints, rtol=1e-5, atol=1e-5
    )
