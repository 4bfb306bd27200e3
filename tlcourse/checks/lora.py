"""Self-checks for chapter 6 (parameter-efficient fine-tuning):
``tlcourse.checks.lora.<exercise>``."""

from __future__ import annotations

from typing import Callable

import torch

from . import Case, CheckResult, compare_to_reference


def _reference_lora(x, weight, bias, A, B, alpha):
    r = A.shape[0]
    return x @ weight.T + bias + (x @ A.T) @ B.T * (alpha / r)


def lora_forward(fn: Callable) -> CheckResult:
    """Exercise 6.1: ``fn(x, weight, bias, A, B, alpha)``: ``x W^T + b + (alpha / r) x A^T B^T``
    with r = A.shape[0]."""
    g = torch.Generator().manual_seed(6)

    def case(n, d_in, d_out, r, alpha, label, zero_b=False):
        B = torch.zeros(d_out, r) if zero_b else torch.randn(d_out, r, generator=g)
        return Case(
            (
                torch.randn(n, d_in, generator=g),
                torch.randn(d_out, d_in, generator=g),
                torch.randn(d_out, generator=g),
                torch.randn(r, d_in, generator=g),
                B,
                alpha,
            ),
            label=label,
        )

    cases = [
        case(4, 6, 5, 2, 4.0, "B = 0 (initialisation)", zero_b=True),
        case(4, 6, 5, 2, 2.0, "alpha = r"),
        case(3, 8, 8, 4, 16.0, "alpha = 4 r"),
        case(5, 10, 3, 1, 1.0, "rank 1"),
        Case(
            (
                torch.randn(2, 7, 6, generator=g),
                torch.randn(5, 6, generator=g),
                torch.randn(5, generator=g),
                torch.randn(3, 6, generator=g),
                torch.randn(5, 3, generator=g),
                6.0,
            ),
            label="a batch of sequences",
        ),
    ]
    hints = {
        "B = 0 (initialisation)": (
            "with B = 0 the output must be exactly the frozen layer's, x W^T + b"
        ),
        "alpha = r": "the update is scaled by alpha / r, where r = A.shape[0]",
        "alpha = 4 r": "scale by alpha / r (not alpha, not 1 / r)",
        "a batch of sequences": "x can have leading dimensions: use x @ A.T, not torch.mm",
    }
    return compare_to_reference(
        "lora_forward", fn, _reference_lora, cases, hints, rtol=1e-4, atol=1e-4
    )


def _reference_adapter(h, down_w, down_b, up_w, up_b):
    return h + torch.nn.functional.gelu(h @ down_w.T + down_b) @ up_w.T + up_b


def adapter_forward(fn: Callable) -> CheckResult:
    """Exercise 6.2: ``fn(h, down_w, down_b, up_w, up_b)``: ``h + up(gelu(down(h)))`` (a Houlsby
    adapter)."""
    g = torch.Generator().manual_seed(7)

    def case(shape, m, label, zero_up=False):
        d = shape[-1]
        up_w = torch.zeros(d, m) if zero_up else torch.randn(d, m, generator=g)
        up_b = torch.zeros(d) if zero_up else torch.randn(d, generator=g)
        return Case(
            (
                torch.randn(*shape, generator=g),
                torch.randn(m, d, generator=g),
                torch.randn(m, generator=g),
                up_w,
                up_b,
            ),
            label=label,
        )

    cases = [
        case((4, 8), 2, "up-projection zero (initialisation)", zero_up=True),
        case((4, 8), 2, "random weights"),
        case((2, 5, 6), 3, "a batch of sequences"),
        case((3, 4), 1, "bottleneck of one"),
    ]
    hints = {
        "up-projection zero (initialisation)": (
            "with a zero up-projection the adapter is the identity: return h unchanged"
        ),
        "random weights": (
            "down-project, GELU, up-project, and ADD the input (the residual connection)"
        ),
        "a batch of sequences": "apply the linear maps on the last dimension (h @ W.T + b)",
    }
    return compare_to_reference(
        "adapter_forward", fn, _reference_adapter, cases, hints, rtol=1e-4, atol=1e-5
    )


def _reference_prompt(prompt, embeds, attention_mask):
    batch, n = embeds.shape[0], prompt.shape[0]
    return (
        torch.cat([prompt.expand(batch, -1, -1), embeds], 1),
        torch.cat([attention_mask.new_ones(batch, n), attention_mask], 1),
    )


def prepend_prompt(fn: Callable) -> CheckResult:
    """Exercise 6.3: ``fn(prompt, embeds, attention_mask) -> (embeds, attention_mask)`` with the
    soft prompt (``n x d``) in front of every row and ``n`` ones in front of every mask row."""
    g = torch.Generator().manual_seed(8)
    padded = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    cases = [
        Case(
            (
                torch.randn(3, 4, generator=g),
                torch.randn(2, 4, 4, generator=g),
                torch.ones(2, 4, dtype=torch.long),
            ),
            label="no padding",
        ),
        Case(
            (torch.randn(3, 4, generator=g), torch.randn(2, 4, 4, generator=g), padded),
            label="padded batch",
        ),
        Case(
            (
                torch.randn(1, 6, generator=g),
                torch.randn(1, 5, 6, generator=g),
                torch.ones(1, 5, dtype=torch.long),
            ),
            label="one prompt vector",
        ),
    ]
    hints = {
        "no padding": (
            "concatenate along the sequence axis (dim 1), "
            "the prompt first, repeated for every row of the batch"
        ),
        "padded batch": (
            "the prompt is never padding: "
            "put ones in front of the mask, keep the row's own zeros after"
        ),
    }
    return compare_to_reference("prepend_prompt", fn, _reference_prompt, cases, hints)


def _reference_plan(budget, shapes, r_tuned, alpha, lr_tuned):
    per_rank = sum(d_out + d_in for d_out, d_in in shapes)
    r = budget // per_rank
    return (r, alpha, lr_tuned) if r >= 1 else (0, alpha, lr_tuned)


def plan_lora(fn: Callable) -> CheckResult:
    """Exercise 6.5: ``fn(budget, shapes, r_tuned, alpha, lr_tuned) -> (r, alpha, lr)``: the largest
    rank whose factors, ``sum (d_out + d_in) r`` over the adapted ``(d_out, d_in)`` matrices, fit in
    ``budget`` numbers (0 when not even rank 1 fits), with ``alpha`` and the learning rate tuned at
    ``r_tuned`` kept as they are (Hu et al. 2022, section 4.1: the alpha / r scale)."""
    minilm = [(384, 384)] * 12  # W_q of MiniLM's 6 layers and W_v
    cases = [
        Case((36_864, minilm, 4, 16.0, 2e-3), label="MiniLM, W_q and W_v"),
        Case((100_000, [(8, 4), (4, 8)], 2, 4.0, 1e-3), label="d_out != d_in"),
        Case((36_863, minilm, 8, 16.0, 2e-3), label="just below a whole rank"),
        Case((9_216, minilm, 4, 16.0, 2e-3), label="exactly rank 1"),
        Case((9_215, minilm, 4, 16.0, 2e-3), label="not even rank 1"),
        Case(
            (1_000_000, [(1024, 4096)] * 3, 2, 2.0, 5e-4), label="a larger budget, another r_tuned"
        ),
    ]
    hints = {
        "MiniLM, W_q and W_v": (
            "a rank-r update of a d_out x d_in matrix has (d_out + d_in) r numbers (B and A), "
            "summed over every adapted matrix"
        ),
        "d_out != d_in": "count B (d_out x r) and A (r x d_in) for each matrix; keep alpha and lr",
        "just below a whole rank": "round the rank down: the factors must fit in the budget",
        "exactly rank 1": "a budget exactly equal to the size of rank 1 fits rank 1",
        "not even rank 1": "when rank 1 does not fit, return rank 0 (no LoRA: the head alone)",
        "a larger budget, another r_tuned": (
            "with the alpha / r scale, alpha and the learning rate found at one rank carry over to "
            "another: do not rescale them with r"
        ),
    }
    return compare_to_reference("plan_lora", fn, _reference_plan, cases, hints)
