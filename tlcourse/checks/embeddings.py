"""Self-checks for chapter 2 (word embeddings): ``tlcourse.checks.embeddings.<exercise>``."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .. import embeddings, wordvectors
from ..chapters import ch02_embeddings as ch02
from . import Case, CheckResult, _report, compare_to_reference


def keep_probability(fn: Callable) -> CheckResult:
    """Exercise 2.1: ``fn(counts, sample) -> keep probability per word`` (word2vec's
    subsampling)."""
    rng = np.random.default_rng(3)
    zipf = (1e5 / np.arange(1, 201) ** 1.1).round()
    cases = [
        Case((zipf, 1e-3), label="Zipf-like counts, t = 1e-3"),
        Case((rng.integers(1, 5000, 50), 1e-4), label="random counts, t = 1e-4"),
        Case((np.array([1000, 10, 1]), 1e-2), label="three words"),
        Case((np.array([5, 5, 5, 5]), 1e-3), label="equal counts"),
        Case((zipf, 0.0), label="sample = 0 (subsampling off)"),
    ]
    general = (
        "f is the relative frequency count / total; keep = (sqrt(f / t) + 1) * t / f, "
        "capped at 1 (np.minimum), as a float array"
    )
    hints = {
        "Zipf-like counts, t = 1e-3": general,
        "random counts, t = 1e-4": general,
        "three words": (
            "rare words must be kept with probability exactly 1: cap with np.minimum(1, ...)"
        ),
        "equal counts": (
            "with 4 equal words every f is 0.25 - use the relative frequency, not the raw count"
        ),
        "sample = 0 (subsampling off)": "t = 0 means no subsampling: return all ones (avoid 0/0)",
    }
    if _matches(fn, _paper_keep_probability, cases, rtol=1e-6):
        return _report(
            "keep_probability",
            True,
            "this is the paper's formula, keep = sqrt(t / f) capped at 1 (Mikolov et al. 2013b, "
            "section 2.3), a correct variant; the exercise's (sqrt(f / t) + 1) * t / f is the "
            "released C code's and gensim's, which keeps every frequent word a little more often",
        )
    return compare_to_reference(
        "keep_probability", fn, embeddings.keep_probability, cases, hints, rtol=1e-6
    )


def _paper_keep_probability(counts, sample):
    """Mikolov et al. (2013b), section 2.3: discard with ``1 - sqrt(t / f)``, i.e. keep with
    ``sqrt(t / f)``, capped at 1."""
    f = np.asarray(counts, dtype=np.float64) / np.sum(counts)
    return np.ones(len(f)) if sample <= 0 else np.minimum(1.0, np.sqrt(sample / f))


def _matches(fn: Callable, reference: Callable, cases, rtol: float) -> bool:
    """Whether ``fn`` agrees with ``reference`` on every case (quietly; any error is a no)."""
    try:
        return all(
            np.allclose(np.asarray(fn(*c.args), dtype=np.float64), reference(*c.args), rtol=rtol)
            for c in cases
        )
    except Exception:  # noqa: BLE001 - a student's code may raise anything
        return False


def _sgns_case(batch: int, k: int, dim: int, seed: int, scale: float = 0.5) -> Case:
    g = torch.Generator().manual_seed(seed)
    return Case(
        (
            torch.randn(batch, dim, generator=g) * scale,
            torch.randn(batch, 1 + k, dim, generator=g) * scale,
        )
    )


def sgns_grads(fn: Callable) -> CheckResult:
    """Exercise 2.2: ``fn(v, u) -> (loss, grad_v, grad_u)`` for the skip-gram negative-sampling
    loss."""
    cases = [
        _sgns_case(4, 5, 8, 0),
        _sgns_case(1, 1, 3, 1),
        _sgns_case(16, 10, 20, 2, scale=2.0),
        Case((torch.zeros(2, 4), torch.zeros(2, 3, 4)), label="all-zero vectors"),
    ]
    cases[1].label, cases[2].label = "one pair, one noise word", "large vectors"
    hints = {
        "random input": (
            "loss = -log σ(u_0·v) - Σ_i log σ(-u_i·v); "
            "the gradient of each score s = u_j·v is σ(s) - y_j"
        ),
        "one pair, one noise word": (
            "column 0 of u is the context (label 1); columns 1.. are noise (label 0)"
        ),
        "large vectors": (
            "use logsigmoid rather than log(sigmoid(...)) so large scores do not give -inf"
        ),
        "all-zero vectors": (
            "with all-zero vectors every σ is 1/2, "
            "the loss is (1 + k) log 2 and the gradients are 0"
        ),
    }
    return compare_to_reference(
        "sgns_grads", fn, embeddings.sgns_grads, cases, hints, rtol=1e-4, atol=1e-6
    )


def _analogy_case(vocab: int, dim: int, queries: int, seed: int, label: str) -> Case:
    g = torch.Generator().manual_seed(seed)
    unit = torch.nn.functional.normalize(torch.randn(vocab, dim, generator=g), dim=1)
    abc = torch.randint(vocab, (3, queries), generator=g)
    return Case((unit, *abc), label=label)


def three_cos_add(fn: Callable) -> CheckResult:
    """Exercise 2.3: ``fn(unit, a, b, c) -> d`` answering analogies by 3CosAdd, excluding a, b and
    c."""
    # A hand-built case in which the best candidate is one of the question words.
    unit = torch.nn.functional.normalize(
        torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.7, 0.7]]), dim=1
    )
    cases = [
        _analogy_case(50, 8, 6, 0, "random vectors"),
        _analogy_case(200, 16, 32, 1, "more random vectors"),
        Case(
            (unit, torch.tensor([0]), torch.tensor([1]), torch.tensor([3])),
            label="the nearest word is a question word",
        ),
        Case(
            (unit, torch.tensor([0, 2]), torch.tensor([2, 0]), torch.tensor([1, 3])),
            label="two questions at once",
        ),
    ]
    hints = {
        "random vectors": (
            "score every word by (b - a + c) · unit[w]; the vectors are unit length already"
        ),
        "more random vectors": (
            "return one id per question: argmax over the vocabulary axis (dim 1)"
        ),
        "the nearest word is a question word": (
            "set the scores of a, b and c to -inf before the argmax"
        ),
        "two questions at once": (
            "exclude each question's own a, b, c (per row), not all of them for every row"
        ),
    }
    return compare_to_reference("three_cos_add", fn, wordvectors.three_cos_add, cases, hints)


def corpus_coverage(fn: Callable) -> CheckResult:
    """Exercise 2.5: ``fn(corpus, target, min_count) -> share`` of the target's tokens whose word
    occurs at least ``min_count`` times in the corpus."""
    reviews = [["a", "great", "film"], ["the", "plot", "is", "thin"], ["a", "film", "to", "miss"]]
    novels = [["the", "ship", "and", "the", "whale"], ["a", "great", "storm"], ["the", "end"]]
    task = [["a", "great", "film"], ["the", "film", "is", "a", "bore"], ["a", "thin", "plot"]]
    cases = [
        Case((reviews, task, 1), label="film reviews, min_count = 1"),
        Case((novels, task, 1), label="novels, min_count = 1"),
        Case((novels, task, 2), label="min_count = 2"),
        Case((reviews + novels, task, 3), label="a count equal to min_count"),
        Case(([["film"]] * 3, [["film", "film", "plot"]], 1), label="repeated target words"),
    ]
    hints = {
        "film reviews, min_count = 1": (
            "count every word of the corpus; return the share of the target's tokens (not of "
            "the corpus's) whose word is in the corpus, a float in [0, 1]"
        ),
        "novels, min_count = 1": (
            "coverage, not the out-of-vocabulary rate: the share of target tokens the corpus knows"
        ),
        "min_count = 2": "a word needs at least min_count occurrences in the corpus to count",
        "a count equal to min_count": (
            "a word seen exactly min_count times is kept (>=, as word2vec's min_count)"
        ),
        "repeated target words": (
            "count tokens, not distinct words: a target word that occurs twice counts twice"
        ),
    }
    return compare_to_reference("corpus_coverage", fn, ch02.corpus_coverage, cases, hints)
