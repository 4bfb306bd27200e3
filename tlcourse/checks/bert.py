"""Self-checks for chapter 4 (BERT): ``tlcourse.checks.bert.<exercise>``."""

from __future__ import annotations

import contextlib
import io
import math
from typing import Callable

import torch
import torch.nn.functional as F

from . import (
    Case,
    CheckResult,
    Property,
    _call,
    _not_callable,
    _report,
    check_properties,
    compare_to_reference,
    summarize,
)

MASK_ID, VOCAB = 4, 1000


def _reference_attention(q, k, v, mask):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~mask.bool()[:, None, None, :], float("-inf"))
    return torch.softmax(scores, -1) @ v


def attention(fn: Callable) -> CheckResult:
    """Exercise 4.1: ``fn(q, k, v, mask)``, scaled dot-product attention over unpadded keys.

    ``q, k, v``: (batch, heads, length, d); ``mask``: (batch, length), 1 for real tokens, 0 for
    padding.
    """
    g = torch.Generator().manual_seed(0)

    def qkv(b, h, n, d, scale=1.0):
        return tuple(scale * torch.randn(b, h, n, d, generator=g) for _ in range(3))

    pad = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    cases = [
        Case((*qkv(2, 1, 5, 4), torch.ones(2, 5, dtype=torch.long)), label="no padding"),
        Case(
            (*qkv(2, 3, 5, 16, 3.0), torch.ones(2, 5, dtype=torch.long)),
            label="large head dimension",
        ),
        Case((*qkv(2, 2, 5, 8), pad), label="padded batch"),
        Case((*qkv(1, 1, 1, 4), torch.ones(1, 1, dtype=torch.long)), label="one token"),
    ]
    hints = {
        "no padding": "softmax(q kᵀ / sqrt(d)) v, the softmax over the last axis (the keys)",
        "large head dimension": "divide the scores by sqrt(d) (d = q.shape[-1]) before the softmax",
        "padded batch": "padding keys get weight 0: set their scores to -inf before the softmax "
        "(the mask has shape (batch, length); broadcast it over heads and queries)",
        "one token": "a single token attends only to itself: the output equals v",
    }
    return compare_to_reference(
        "attention", fn, _reference_attention, cases, hints, rtol=1e-4, atol=1e-6
    )


def _mask_case(rows: int, length: int, padded_from: int | None, seed: int) -> Case:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (rows, length), generator=g)
    special = torch.zeros(rows, length, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True
    if padded_from is not None:
        special[rows // 2 :, padded_from:] = True
    return Case(
        (ids, special, MASK_ID, VOCAB, seed),
        label=f"{rows} x {length}" + (", half padded" if padded_from else ""),
    )


def _mask_properties() -> list[Property]:
    def pair(out, case):
        if not (
            isinstance(out, (tuple, list))
            and len(out) == 2
            and all(isinstance(t, torch.Tensor) for t in out)
        ):
            return f"expected a pair of tensors (inputs, labels), got {type(out).__name__}"
        if out[0].shape != case.args[0].shape or out[1].shape != case.args[0].shape:
            return f"inputs/labels must have the shape of input_ids {tuple(case.args[0].shape)}"
        return None

    def labels_right(out, case):
        ids, special = case.args[0], case.args[1]
        _, labels = out
        chosen = labels != -100
        if chosen[special].any():
            return "a special or padding position was chosen"
        if not torch.equal(labels[chosen], ids[chosen]):
            return "labels at chosen positions must be the ORIGINAL token ids"
        return None

    def untouched(out, case):
        inputs, labels = out
        unchosen = labels == -100
        if not torch.equal(inputs[unchosen], case.args[0][unchosen]):
            return "a position that is not chosen (label -100) was changed in the inputs"
        return None

    def rates(out, case):
        ids, special = case.args[0], case.args[1]
        inputs, labels = out
        chosen = labels != -100
        eligible = int((~special).sum())
        n = int(chosen.sum())
        sd = math.sqrt(0.15 * 0.85 / eligible)
        if abs(n / eligible - 0.15) > 5 * sd:
            return f"chose {n / eligible:.3%} of the eligible (non-special) positions, expected 15%"
        if n == 0:
            return "nothing was chosen"
        masked = (inputs[chosen] == MASK_ID).float().mean().item()
        kept = (inputs[chosen] == ids[chosen]).float().mean().item()
        for what, got, want in (
            ("replaced by [MASK]", masked, 0.8),
            ("left unchanged", kept, 0.1),
            ("replaced by a random token", 1 - masked - kept, 0.1),
        ):
            if abs(got - want) > 5 * math.sqrt(want * (1 - want) / n) + 0.002:
                return f"{got:.1%} of the chosen positions were {what}, expected {want:.0%}"
        return None

    def split_at_random(out, case):
        # The 80/10/10 split is drawn per chosen position, so it does not depend on where the
        # position is: the first and the last third of the chosen positions (reading order) are
        # masked at the same rate.
        inputs, labels = out
        chosen = (labels != -100).flatten().nonzero().flatten()
        third = len(chosen) // 3
        if third < 100:
            return None
        rates = [
            (inputs.flatten()[part] == MASK_ID).float().mean().item()
            for part in (chosen[:third], chosen[-third:])
        ]
        sd = math.sqrt(0.8 * 0.2 / third)
        if any(abs(r - 0.8) > 5 * sd for r in rates):
            return (
                f"the first third of the chosen positions is {rates[0]:.0%} [MASK], the last third "
                f"{rates[1]:.0%}: the split into [MASK] / random / unchanged follows the positions"
            )
        return None

    return [
        Property("returns (inputs, labels) shaped like input_ids", pair),
        Property(
            "labels: the original id where chosen, -100 elsewhere; specials never chosen",
            labels_right,
            "choose with probability 0.15 only where special is False; "
            "labels = input_ids where chosen, else -100",
        ),
        Property("unchosen positions unchanged", untouched),
        Property(
            "15% chosen; of those 80% [MASK], 10% random, 10% unchanged",
            rates,
            "one Bernoulli(0.15) draw per eligible position; then, among the chosen, "
            "80% -> mask_id, half of the rest -> a random id, the others stay",
        ),
        Property(
            "the 80/10/10 split is random, not by position",
            split_at_random,
            "draw a random number for every chosen position (torch.rand with the generator) and "
            "split on it; do not give [MASK] to the first 80% of the chosen positions in order",
        ),
    ]


def mask_tokens(fn: Callable) -> CheckResult:
    """Exercise 4.2: ``fn(input_ids, special, mask_id, vocab_size, seed) -> (inputs, labels)``,
    BERT's masking."""
    cases = [_mask_case(400, 128, None, 0), _mask_case(600, 96, 40, 1)]
    return check_properties("mask_tokens", fn, cases, _mask_properties())


def _reference_gathered(hidden, labels, head):
    chosen = labels != -100
    return F.cross_entropy(head(hidden[chosen]), labels[chosen])


class _CountingHead(torch.nn.Module):
    """A vocabulary projection that records how many rows it was applied to. Its weights are kept
    inside (no ``.weight``), so the only way to use it is to call it: ``F.linear`` with the head's
    weights over every position cannot bypass the count."""

    rows = 0

    def __init__(self, d: int, v: int):
        super().__init__()
        self._projection = torch.nn.Linear(d, v)

    def forward(self, x):
        type(self).rows += x.reshape(-1, x.shape[-1]).shape[0]
        return self._projection(x)


def gathered_loss(fn: Callable) -> CheckResult:
    """Exercise 4.3: ``fn(hidden, labels, head)``: the MLM loss with ``head`` applied only at
    labelled positions."""
    torch.manual_seed(3)
    g = torch.Generator().manual_seed(3)
    cases = []
    for b, n, d, v, p, label in (
        (2, 6, 8, 20, 0.5, "small batch"),
        (4, 16, 12, 50, 0.15, "15% labelled"),
        (3, 5, 8, 30, 0.0, "one labelled position"),
    ):
        labels = torch.randint(v, (b, n), generator=g)
        keep = torch.rand(b, n, generator=g) < p
        keep[0, 1] = True
        cases.append(
            Case(
                (
                    torch.randn(b, n, d, generator=g),
                    labels.masked_fill(~keep, -100),
                    torch.nn.Linear(d, v),
                ),
                label=label,
            )
        )
    hints = {
        "small batch": (
            "select the rows hidden[labels != -100] first, apply the head to them, "
            "then cross-entropy against labels[labels != -100] "
            "(the mean over chosen positions only)"
        ),
        "one labelled position": "with one label the loss is that position's cross-entropy alone",
    }
    with contextlib.redirect_stdout(
        io.StringIO()
    ) as printed:  # one line per check: the verdict below
        result = compare_to_reference(
            "gathered_loss", fn, _reference_gathered, cases, hints, rtol=1e-5, atol=1e-6
        )
    if not result:
        print(printed.getvalue(), end="")
        return result
    # Same loss is not enough: the point is to skip the head at the unlabelled 85%.
    hidden, labels, _ = cases[1].args
    head = _CountingHead(hidden.shape[-1], 50)
    _CountingHead.rows = 0
    try:
        fn(hidden, labels, head)
    except AttributeError as exc:  # e.g. head.weight: the head's own forward was bypassed
        return _report(
            "gathered_loss",
            False,
            f"calling fn with a head that has no .weight failed ({exc})\n"
            "    hint: use the head by calling it, head(rows), not through its weights",
        )
    chosen = int((labels != -100).sum())
    if _CountingHead.rows == 0:
        return _report(
            "gathered_loss",
            False,
            "the head was never called\n    hint: apply it as head(hidden[labels != -100])",
        )
    if _CountingHead.rows > chosen:
        return _report(
            "gathered_loss",
            False,
            f"the loss is right, but the head was applied to {_CountingHead.rows} positions, "
            f"not just the {chosen} labelled ones\n"
            "    hint: index hidden with the boolean mask BEFORE calling head",
        )
    return _report(
        "gathered_loss",
        True,
        f"all {len(cases)} cases match, and the head ran on the {chosen} labelled positions only",
    )


def _token_classifier(layers: int, seed: int):
    from transformers import BertConfig, BertForTokenClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=60,
        hidden_size=16,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=5,
    )
    return BertForTokenClassification(config)


def freeze_body(fn: Callable) -> CheckResult:
    """Exercise 4.4: ``fn(model)`` freezes the body of a ``BertForTokenClassification``.

    Every parameter of ``model.bert`` (embeddings and layers) must stop training
    (``requires_grad`` False), ``model.classifier`` must keep training, no weight may change, and
    ``fn`` returns the model. Then one training step on the result must move the head only.
    """
    name = "freeze_body"
    if not callable(fn):
        return _not_callable(name, fn)
    hint_body = (
        "switch requires_grad off on every parameter of model.bert, its embeddings included "
        "(Parameter.requires_grad_); model.bert.requires_grad = False only adds an attribute "
        "to the module"
    )
    for layers in (1, 3):
        case = Case((_token_classifier(layers, seed=layers),), label=f"{layers}-layer tagger")
        before = {k: v.detach().clone() for k, v in case.args[0].named_parameters()}
        model, error = _call(fn, case)
        where = f"case {case.label}"
        if error:
            return _report(name, False, f"{where}: {error}", case)
        if not isinstance(model, torch.nn.Module) or not hasattr(model, "bert"):
            return _report(
                name,
                False,
                f"{where}: expected the model back, got {summarize(model)}\n"
                "    hint: freeze the model in place, then `return model`",
                case,
            )
        trainable = [k for k, p in model.bert.named_parameters() if p.requires_grad]
        if trainable:
            return _report(
                name,
                False,
                f"{where}: {len(trainable)} parameters of the body still train, "
                f"e.g. bert.{trainable[0]}\n    hint: {hint_body}",
                case,
            )
        head = [k for k, p in model.classifier.named_parameters() if not p.requires_grad]
        if head:
            return _report(
                name,
                False,
                f"{where}: the new head is frozen too (classifier.{head[0]}); nothing would "
                "learn\n    hint: freeze model.bert only; model.classifier must keep training",
                case,
            )
        changed = [k for k, p in model.named_parameters() if not torch.equal(p, before[k])]
        if changed:
            return _report(
                name,
                False,
                f"{where}: freezing changed the weights ({changed[0]})\n"
                "    hint: only switch requires_grad off; do not re-initialise or edit weights",
                case,
            )
        model.train()
        ids = torch.randint(1, 60, (4, 8), generator=torch.Generator().manual_seed(layers))
        logits = model(input_ids=ids).logits
        F.cross_entropy(logits.flatten(0, 1), (ids % 5).flatten()).backward()
        trained = [p for p in model.parameters() if p.requires_grad]
        torch.optim.SGD(trained, lr=0.1).step()
        moved = [k for k, p in model.named_parameters() if not torch.equal(p, before[k])]
        if not moved or any(not k.startswith("classifier.") for k in moved):
            return _report(
                name,
                False,
                f"{where}: after one training step, the changed parameters are {moved[:3]}\n"
                f"    hint: {hint_body}",
                case,
            )
    return _report(
        name, True, "the body is frozen, the head trains, and a step moves the head only"
    )
