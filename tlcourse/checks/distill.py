"""Self-checks for chapter 8 (knowledge distillation): ``tlcourse.checks.distill.<exercise>``."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from . import Case, CheckResult, compare_to_reference


def _reference_loss(student_logits, teacher_logits, labels, alpha, tau):
    soft = F.kl_div(
        F.log_softmax(student_logits / tau, -1),
        F.softmax(teacher_logits / tau, -1),
        reduction="batchmean",
    )
    return (1 - alpha) * F.cross_entropy(student_logits, labels) + alpha * tau**2 * soft


def _logit_cases(seed: int, with_labels: bool) -> list[Case]:
    g = torch.Generator().manual_seed(seed)

    def logits(n, c, spread=2.0):
        return spread * torch.randn(n, c, generator=g, dtype=torch.float64)

    def case(n, c, alpha, tau, label, same=False):
        s = logits(n, c)
        t = s.clone() if same else logits(n, c)
        args = (
            (s, t, torch.randint(c, (n,), generator=g), alpha, tau) if with_labels else (s, t, tau)
        )
        return Case(args, label=label)

    if with_labels:
        return [
            case(4, 3, 0.0, 2.0, "alpha = 0: plain cross-entropy"),
            case(4, 3, 1.0, 1.0, "alpha = 1, tau = 1"),
            case(5, 2, 0.5, 4.0, "alpha = 0.5, tau = 4"),
            case(3, 5, 0.9, 8.0, "a high temperature"),
            case(6, 4, 1.0, 2.0, "student equals teacher", same=True),
        ]
    return [
        case(4, 3, None, 1.0, "tau = 1"),
        case(5, 2, None, 4.0, "tau = 4"),
        case(3, 6, None, 10.0, "a high temperature"),
        case(2, 4, None, 2.0, "student equals teacher", same=True),
    ]


def distillation_loss(fn: Callable) -> CheckResult:
    """Exercise 8.1: ``fn(student_logits, teacher_logits, labels, alpha, tau)``:
    ``(1 - alpha) CE(labels, z_S) + alpha tau^2 KL(softmax(z_T / tau) || softmax(z_S / tau))``,
    batch mean."""
    hints = {
        "alpha = 0: plain cross-entropy": (
            "with alpha = 0 only (1 - alpha) * cross_entropy(student_logits, labels) remains"
        ),
        "alpha = 1, tau = 1": (
            "KL(p_T || p_S) = sum p_T (log p_T - log p_S), "
            "averaged over the batch (not over the classes)"
        ),
        "alpha = 0.5, tau = 4": (
            "divide BOTH the student's and the teacher's logits by tau, "
            "and multiply the KL term by tau ** 2"
        ),
        "student equals teacher": "the KL term is zero when the two distributions are equal",
    }
    return compare_to_reference(
        "distillation_loss",
        fn,
        _reference_loss,
        _logit_cases(11, True),
        hints,
        rtol=1e-6,
        atol=1e-9,
    )


def _reference_gradient(student_logits, teacher_logits, tau):
    return (
        tau
        * (F.softmax(student_logits / tau, -1) - F.softmax(teacher_logits / tau, -1))
        / len(student_logits)
    )


def soft_gradient(fn: Callable) -> CheckResult:
    """Exercise 8.2: ``fn(student_logits, teacher_logits, tau)``: the gradient of
    ``tau^2 KL(softmax(z_T / tau) || softmax(z_S / tau))`` (batch mean) with respect to the
    student's logits, in closed form (no autograd)."""
    hints = {
        "tau = 1": (
            "per example the gradient is p_S - p_T; the batch mean divides it by the batch size"
        ),
        "tau = 4": (
            "the chain rule through z / tau gives a factor 1 / tau, "
            "and the tau^2 scaling another tau^2: tau (p_S - p_T)"
        ),
        "student equals teacher": "equal logits give a zero gradient",
    }
    return compare_to_reference(
        "soft_gradient",
        fn,
        _reference_gradient,
        _logit_cases(12, False),
        hints,
        rtol=1e-6,
        atol=1e-10,
    )


def _reference_pseudo(teacher_logits, threshold):
    p = F.softmax(teacher_logits, -1)
    confidence, label = p.max(-1)
    return torch.where(confidence >= threshold, label, torch.full_like(label, -100))


def pseudo_labels(fn: Callable) -> CheckResult:
    """Exercise 8.3: ``fn(teacher_logits, threshold)``: the teacher's predicted class where its
    probability is at least ``threshold``, and -100 (cross-entropy's ignore index) elsewhere."""
    g = torch.Generator().manual_seed(13)
    cases = [
        Case((3 * torch.randn(8, 2, generator=g), 0.0), label="threshold 0: every row labelled"),
        Case((3 * torch.randn(8, 2, generator=g), 0.9), label="two classes, threshold 0.9"),
        Case((2 * torch.randn(10, 4, generator=g), 0.6), label="four classes"),
        Case((torch.tensor([[2.0, 0.0], [0.0, 0.0]]), 0.5), label="a tie at the threshold"),
    ]
    hints = {
        "threshold 0: every row labelled": (
            "return the arg-max class of each row when every probability passes"
        ),
        "two classes, threshold 0.9": (
            "compare the softmax PROBABILITY of the "
            "predicted class (not the logit) with the threshold"
        ),
        "a tie at the threshold": (
            "keep rows whose confidence is >= threshold (a 50/50 row passes 0.5)"
        ),
    }
    return compare_to_reference("pseudo_labels", fn, _reference_pseudo, cases, hints)


def _reference_dark(teacher_logits, tau):
    return (1 - F.softmax(teacher_logits / tau, -1).max(-1).values).mean()


def dark_knowledge(fn: Callable) -> CheckResult:
    """Exercise 8.5: ``fn(teacher_logits, tau)``: the mean over rows of the probability that the
    softened distribution ``softmax(z_T / tau)`` puts on the classes other than its arg-max."""
    g = torch.Generator().manual_seed(14)
    cases = [
        Case((3 * torch.randn(8, 4, generator=g, dtype=torch.float64), 1.0), label="tau = 1"),
        Case((3 * torch.randn(8, 4, generator=g, dtype=torch.float64), 4.0), label="tau = 4"),
        Case((3 * torch.randn(6, 2, generator=g, dtype=torch.float64), 2.0), label="two classes"),
        Case((torch.zeros(3, 5, dtype=torch.float64), 1.0), label="a uniform teacher"),
    ]
    hints = {
        "tau = 1": "1 - (the largest probability of a row), averaged over the rows",
        "tau = 4": "soften first: the probabilities of logits / tau, then 1 - their maximum",
        "two classes": "with two classes the mass off the arg-max is the smaller probability",
        "a uniform teacher": (
            "a uniform distribution over C classes leaves (C - 1) / C off its arg-max"
        ),
    }
    return compare_to_reference(
        "dark_knowledge", fn, _reference_dark, cases, hints, rtol=1e-6, atol=1e-10
    )
