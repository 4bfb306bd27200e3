"""Self-checks for chapter 1 (What is transfer learning?):
``tlcourse.checks.transfer.<exercise>``."""

from __future__ import annotations

import hashlib
import itertools
from typing import Any, Callable, Mapping

import numpy as np
import torch

from .. import bow
from . import (
    Case,
    CheckResult,
    Property,
    _report,
    check_properties,
    compare_to_reference,
    match,
    summarize,
)


def _corpus(
    rng: np.random.Generator, vocab: list[str], n_texts: int, zipf: float = 1.3
) -> list[list[str]]:
    weights = 1.0 / np.arange(1, len(vocab) + 1) ** zipf
    weights /= weights.sum()
    return [
        [str(w) for w in rng.choice(vocab, size=int(rng.integers(1, 9)), p=weights)]
        for _ in range(n_texts)
    ]


def js_divergence(fn: Callable) -> CheckResult:
    """Exercise 1.1: ``fn(texts_a, texts_b) -> float``, the unigram Jensen-Shannon divergence in
    bits."""
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(30)]
    cases = [
        Case((_corpus(rng, words, 20), _corpus(rng, words, 25)), label="random corpora"),
        Case(
            (_corpus(rng, words[:20], 40), _corpus(rng, words[10:], 10)),
            label="random corpora, partly shared words",
        ),
        Case(
            ([["the", "cat"], ["the", "mat"]], [["the", "cat"], ["the", "mat"]]),
            label="identical corpora",
        ),
        Case(([["a", "b"]], [["c"], ["d", "d"]]), label="no word in common"),
        Case(([["a", "a", "a", "b"]], [["a"], ["b"]]), label="same words, different frequencies"),
        Case(([["x"] * 50 + ["y"]], [["x", "y"] * 3]), label="very different corpus sizes"),
    ]
    general = (
        "follow the equation step by step: count words per corpus, "
        "divide by that corpus's token count, M = (P + Q) / 2 over the union of words, "
        "KL terms in log base 2, skip terms where P (or Q) is 0"
    )
    hints = {
        "random corpora": general,
        "random corpora, partly shared words": general,
        "identical corpora": "the divergence of a distribution from itself is 0",
        "no word in common": (
            "with no shared word JS is exactly 1 bit: "
            "use log base 2 and the mixture M = (P + Q) / 2"
        ),
        "same words, different frequencies": (
            "normalise counts to probabilities per corpus (P sums to 1, Q sums to 1)"
        ),
        "very different corpus sizes": (
            "normalise each corpus by its own token count, not by the total of both"
        ),
    }
    return compare_to_reference(
        "js_divergence", fn, bow.unigram_js_divergence, cases, hints, rtol=1e-6, atol=1e-9
    )


def _budget_properties() -> list[Property]:
    def keys(out: Any, case: Case) -> str | None:
        if not isinstance(out, Mapping):
            return f"expected a dict {{budget: indices}}, got {type(out).__name__}"
        want = list(case.kwargs["budgets"])
        return None if sorted(out) == sorted(want) else f"expected keys {want}, got {sorted(out)}"

    def sizes(out: Any, case: Case) -> str | None:
        n = len(case.kwargs["labels"])
        for b, idx in out.items():
            idx = np.asarray(idx)
            if idx.ndim != 1 or len(idx) != b:
                return f"budget {b}: expected {b} indices, got shape {idx.shape}"
            if idx.dtype.kind not in "iu":
                return f"budget {b}: indices must be integers, got dtype {idx.dtype}"
            if len(np.unique(idx)) != len(idx):
                return f"budget {b}: some rows are chosen twice"
            if idx.min() < 0 or idx.max() >= n:
                return f"budget {b}: indices must lie in 0..{n - 1}"
        return None

    def balanced(out: Any, case: Case) -> str | None:
        labels = np.asarray(case.kwargs["labels"])
        classes, available = np.unique(labels, return_counts=True)
        for b, idx in out.items():
            counts = np.array([(labels[np.asarray(idx)] == c).sum() for c in classes])
            # As balanced as possible: a class may have fewer only when it has run out of rows.
            short = [
                c for c, k, a in zip(classes, counts, available) if k < counts.max() - 1 and k < a
            ]
            if short:
                return (
                    f"budget {b}: class counts {dict(zip(classes.tolist(), counts.tolist()))} "
                    "are not balanced"
                )
        return None

    def nested(out: Any, case: Case) -> str | None:
        budgets = sorted(out)
        for small, big in zip(budgets, budgets[1:]):
            if not set(np.asarray(out[small]).tolist()) <= set(np.asarray(out[big]).tolist()):
                return f"the rows of budget {small} are not all inside budget {big}"
        return None

    return [
        Property("a dict with one entry per budget", keys),
        Property("the right number of distinct, valid row indices", sizes),
        Property("class-balanced", balanced, "take rows from the classes in turn (round robin)"),
        Property(
            "nested budgets",
            nested,
            "draw ONE random order per seed and take its first b rows for budget b",
        ),
    ]


def label_budgets(fn: Callable) -> CheckResult:
    """Exercise 1.2: ``fn(labels, budgets, seed) -> {budget: row indices}``
    (balanced, nested, seeded)."""
    rng = np.random.default_rng(2)
    cases = [
        Case(
            kwargs=dict(labels=rng.integers(0, 2, 100).tolist(), budgets=[4, 10, 50], seed=0),
            label="two classes",
        ),
        Case(
            kwargs=dict(labels=rng.integers(0, 4, 200).tolist(), budgets=[8, 20, 40, 100], seed=3),
            label="four classes",
        ),
        Case(
            kwargs=dict(labels=[0] * 90 + [1] * 10, budgets=[6, 30], seed=1),
            label="imbalanced classes",
        ),
        Case(
            kwargs=dict(labels=[1, 0, 1, 0, 1], budgets=[1, 5], seed=7),
            label="tiny set, budget = all rows",
        ),
    ]
    result = check_properties("label_budgets", fn, cases, _budget_properties())
    if not result:
        return result
    a = fn(labels=[0, 1] * 50, budgets=[20], seed=0)
    b = fn(labels=[0, 1] * 50, budgets=[20], seed=1)
    if np.array_equal(np.sort(np.asarray(a[20])), np.sort(np.asarray(b[20]))):
        return _report(
            "label_budgets",
            False,
            "seeds 0 and 1 chose the same rows: the seed must change the draw",
        )
    return result


# Exercise 1.4 (think): place the opening examples on the three axes of the taxonomy.
# "What transfers" lists Pan and Yang's four kinds, plus a model's predictions (distillation).
AXES = {
    "differs": ("inductive", "domain adaptation"),
    "transfers": (
        "instances",
        "representations",
        "parameters",
        "relational knowledge",
        "predictions",
    ),
    "when": ("sequential", "simultaneous", "continual"),
}
# Other spellings of an option, mapped to the option (the chapter says "feature representations").
_SYNONYMS = {
    "transfers": {
        "features": "representations",
        "feature": "representations",
        "representation": "representations",
        "feature representation": "representations",
        "feature representations": "representations",
        "instance": "instances",
        "parameter": "parameters",
        "prediction": "predictions",
    },
}
# The scenarios, in the order the exercise lists them.
SCENARIOS = (
    "resnet_to_xrays",
    "bert_to_task",
    "english_to_swahili",
    "t5_flan",
    "gpt4_to_small_model",
    "sst2_to_amazon",
)
# The accepted answers are stored only as digests (see _digest) of "scenario|axis|answer", one per
# accepted answer; where an axis does not decide a scenario, every option of it is accepted. The
# answers themselves are in the book's solution and the instructors' answer key, not here.
_SALT = "tlcourse-taxonomy-1"
_ACCEPTED = frozenset(
    """
    155f5333b3f1119c 17c104a67c5f107e 22d5cb987743e649 2a6e3dc1844f3782 2aed830d90327264
    2f61d26b56a88c19 39a5d148b9134a57 466d190846caaf04 47e56335f691a3e8 4f9f1434bf056b3b
    623af237e9fac3f6 791d4cdba2152934 8e33791b10458b4e 8ee4f6511767198f 92887079ccb287dd
    a12567b59f6368e8 a5787848235e80a7 aff71cc91a9215ff b21a289e68113c62 b46fa94a7c51cf6e
    c37e307539a4e6d6 cecb2b5543ad0117 d436af57c89f872d ea5c6035f34aa685
    """.split()
)
_HINTS = {
    "differs": (
        "does the label set / P(Y|X) change (a new task), "
        "or only the inputs X and P(X) (same task, new domain)?"
    ),
    "transfers": (
        "what crosses over: chosen source examples, learned features, the weights themselves, "
        "relations between data points, or a model's predictions?"
    ),
    "when": (
        "is the source learned before the target, together with it, or as one of a stream of tasks?"
    ),
}


def _digest(scenario: str, axis: str, answer: str) -> str:
    """The salted SHA-256 digest (16 hex digits) of one normalised answer."""
    return hashlib.sha256(f"{_SALT}|{scenario}|{axis}|{answer}".encode()).hexdigest()[:16]


def taxonomy(answers: Mapping[str, Mapping[str, str]]) -> CheckResult:
    """Exercise 1.4: ``answers[scenario][axis]`` for every scenario in ``SCENARIOS`` and axis in
    ``AXES`` (common other spellings, such as "features" for "representations", are accepted)."""
    if not isinstance(answers, Mapping):
        return _report(
            "taxonomy",
            False,
            f"expected a dict scenario -> {{axis: answer}}, got {type(answers).__name__}",
        )
    missing = [s for s in SCENARIOS if s not in answers]
    if missing:
        return _report(
            "taxonomy",
            False,
            f"no answer yet for: {', '.join(missing)} (scenarios: {', '.join(SCENARIOS)})",
        )
    problems = []
    for scenario in SCENARIOS:
        given = answers[scenario]
        for axis, options in AXES.items():
            value = str(given.get(axis, "")).strip().lower() if isinstance(given, Mapping) else ""
            value = _SYNONYMS.get(axis, {}).get(value, value)
            if value not in options:
                problems.append(
                    f"{scenario}.{axis}: {value or '(missing)'!r} "
                    f"is not one of {', '.join(options)}"
                )
            elif _digest(scenario, axis, value) not in _ACCEPTED:
                problems.append(f"{scenario}.{axis}: reconsider - {_HINTS[axis]}")
    if problems:
        return _report(
            "taxonomy",
            False,
            f"{len(problems)} answer(s) to revisit:\n    " + "\n    ".join(problems),
        )
    return _report(
        "taxonomy",
        True,
        f"all {len(SCENARIOS)} scenarios placed consistently with the chapter's table",
    )


# Exercise 1.5: rehearsal, source rows mixed into every fine-tuning batch.
_REHEARSAL_BATCHES = 40  # batches of the student's (endless) stream that the check looks at


class _Pair(tuple):
    """``(x, y)``, shown in a failure report by its shapes rather than its values."""

    def __repr__(self) -> str:
        return f"(x: tensor {tuple(self[0].shape)}, y: tensor {tuple(self[1].shape)})"


def _rehearsal_pair(n: int, domain: int, n_classes: int, seed: int) -> _Pair:
    """``(x, y)``: row ``i`` of ``x`` is ``[domain, i, i % 5]``, so the check can tell where a row
    came from; the labels are random."""
    rng = np.random.default_rng(seed)
    i = torch.arange(n)
    x = torch.stack([torch.full((n,), domain), i, i % 5], 1)
    return _Pair((x, torch.as_tensor(rng.integers(0, n_classes, n))))


def _first_batches(fn: Callable) -> Callable:
    def run(**kwargs: Any) -> list:
        return [tuple(b) for b in itertools.islice(iter(fn(**kwargs)), _REHEARSAL_BATCHES)]

    return run


def _rehearsal_properties(run: Callable) -> list[Property]:
    def shape(out: Any, case: Case) -> str | None:
        b, x = case.kwargs["batch_size"], case.kwargs["target"][0]
        if len(out) < _REHEARSAL_BATCHES:
            return f"the stream ended after {len(out)} batches; it must be endless (a generator)"
        for k, batch in enumerate(out):
            if len(batch) != 2 or not all(isinstance(t, torch.Tensor) for t in batch):
                return f"batch {k}: expected a pair of tensors (x, y), got {summarize(batch)}"
            bx, by = batch
            if bx.shape != (b, *x.shape[1:]) or by.shape != (b,):
                return (
                    f"batch {k}: expected x of shape {(b, *x.shape[1:])} and y of shape {(b,)}, "
                    f"got {tuple(bx.shape)} and {tuple(by.shape)}"
                )
            if bx.dtype != x.dtype or by.dtype != case.kwargs["target"][1].dtype:
                return f"batch {k}: dtypes changed to {bx.dtype}, {by.dtype}"
        return None

    def rows(out: Any, case: Case) -> str | None:
        for k, (bx, by) in enumerate(out):
            for row, label in zip(bx.tolist(), by.tolist()):
                x, y = case.kwargs["source" if row[0] == 1 else "target"]
                i = row[1]
                if not 0 <= i < len(x) or x[i].tolist() != row:
                    return f"batch {k}: row {row} is not a row of the data"
                if y[i].item() != label:
                    return f"batch {k}: a row came with the label of another row"
        return None

    def counts(out: Any, case: Case) -> str | None:
        k, b = case.kwargs["n_source"], case.kwargs["batch_size"]
        for j, (bx, _) in enumerate(out):
            got = int((bx[:, 0] == 1).sum())
            if got != k:
                return (
                    f"batch {j}: {got} source rows and {b - got} target rows, "
                    f"expected {k} and {b - k}"
                )
        return None

    def random(out: Any, case: Case) -> str | None:
        seen = {d: set() for d in (0, 1)}
        for bx, _ in out:
            for row in bx.tolist():
                seen[row[0]].add(row[1])
        k, b = case.kwargs["n_source"], case.kwargs["batch_size"]
        for d, name, per_batch in ((0, "target", b - k), (1, "source", k)):
            n = len(case.kwargs[name][0])
            draws = per_batch * len(out)
            if draws >= 2 * n and len(seen[d]) < n // 2:
                return (
                    f"only {len(seen[d])} of the {n} {name} rows were ever drawn "
                    f"in {len(out)} batches"
                )
            if per_batch and len(seen[d]) <= per_batch and n > per_batch:
                return f"every batch has the same {name} rows"
        return None

    def seeded(out: Any, case: Case) -> str | None:
        other = run(**{**case.kwargs, "seed": case.kwargs["seed"] + 1})
        return "seeds differ but the batches are the same" if match(other, out) is None else None

    return [
        Property(
            "endless pairs (x, y) of batch_size rows",
            shape,
            "loop forever (while True: ... yield x, y); draw rows with replacement, so that a "
            "batch can be larger than the data",
        ),
        Property(
            "every row keeps its own label",
            rows,
            "draw row indices once per batch and index x and y with the same indices",
        ),
        Property(
            "n_source rows from the source, the others from the target",
            counts,
            "draw batch_size - n_source target rows and n_source source rows, then torch.cat them",
        ),
        Property(
            "rows drawn at random, new ones each batch",
            random,
            "create ONE torch.Generator seeded with `seed` before the loop, and draw every batch's "
            "indices from it with replacement (torch.randint, as tlcourse.train.random_batches)",
        ),
        Property("the seed changes the draw", seeded, "seed the generator with `seed`"),
    ]


def rehearsal_batches(fn: Callable) -> CheckResult:
    """Exercise 1.5: ``fn(target, source, batch_size, n_source, seed)`` -> an endless iterator of
    batches ``(x, y)``: ``n_source`` rows drawn at random (with replacement) from the ``(x, y)``
    pair ``source``, the other ``batch_size - n_source`` from ``target``, from a generator seeded
    by ``seed``."""
    target, source = _rehearsal_pair(60, 0, 2, 5), _rehearsal_pair(200, 1, 2, 6)
    cases = [
        Case(
            kwargs=dict(target=target, source=source, batch_size=16, n_source=4, seed=0),
            label="a quarter of each batch from the source",
        ),
        Case(
            kwargs=dict(target=target, source=source, batch_size=10, n_source=0, seed=1),
            label="no rehearsal (n_source = 0)",
        ),
        Case(
            kwargs=dict(target=target, source=source, batch_size=8, n_source=8, seed=2),
            label="only source rows (n_source = batch_size)",
        ),
        Case(
            kwargs=dict(
                target=_rehearsal_pair(3, 0, 2, 7),
                source=_rehearsal_pair(5, 1, 4, 8),
                batch_size=12,
                n_source=5,
                seed=3,
            ),
            label="fewer target rows than the batch needs",
        ),
    ]
    name = "rehearsal_batches"
    if not callable(fn):
        return check_properties(name, fn, cases, [])
    run = _first_batches(fn)
    return check_properties(name, run, cases, _rehearsal_properties(run))
