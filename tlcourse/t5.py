"""Chapter 5: T5 — every task as text, span corruption, and mixing many tasks.

Raffel et al. (2020), "Exploring the Limits of Transfer Learning with a Unified Text-to-Text
Transformer" (JMLR 21):

* **Text-to-text** (section 2.4): a task prefix and the input become one string, the label becomes
  the target string ("rte sentence1: ... sentence2: ..." -> "not_entailment"); :func:`to_text` and
  :func:`parse_label` go there and back, counting a generated string that is no label as *invalid*.
* **Span corruption** (section 3.3.4 and ``random_spans_noise_mask`` in the T5 code): 15% of the
  tokens, in spans of mean length 3 with random boundaries, are each replaced in the input by one
  sentinel; the target lists the sentinels, each followed by the span it replaced.
* **Mixing** (section 3.5.2): examples-proportional rates with an artificial dataset size limit
  ``K``, ``r_m = min(e_m, K) / sum_n min(e_n, K)``; temperature scaling ``r_m ∝ r_m^{1/T}``; equal
  mixing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

INVALID = -1


# --------------------------------------------------------------------------------------------
# Tasks as text


@dataclass(frozen=True)
class TextTask:
    """How one classification task is written as text: a prefix, the input fields, the label
    strings."""

    name: str
    prefix: str
    fields: tuple[str, ...]
    labels: tuple[str, ...]

    def source(self, row: dict) -> str:
        """``"prefix field1: ... field2: ..."``, e.g. ``"rte sentence1: ... sentence2: ..."``."""
        return " ".join([self.prefix] + [f"{f}: {row[f]}" for f in self.fields])


# Label strings as in the T5 paper's appendix D where it has them (GLUE); one word per AG News
# topic.
TASKS = {
    "sst2": TextTask("sst2", "sst2", ("sentence",), ("negative", "positive")),
    "rte": TextTask("rte", "rte", ("sentence1", "sentence2"), ("entailment", "not_entailment")),
    "ag_news": TextTask("ag_news", "topic", ("text",), ("world", "sports", "business", "science")),
    # UCI Yelp review sentences: sentiment like SST-2, with its own prefix
    "reviews": TextTask("reviews", "review", ("sentence",), ("negative", "positive")),
}


def task(name: str) -> TextTask:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; the text-to-text tasks are {sorted(TASKS)}.")
    return TASKS[name]


def to_text(name: str, rows) -> tuple[list[str], list[str]]:
    """``(inputs, targets)`` strings for the rows of a ``datasets.Dataset`` (or a list of dicts) of
    task ``name``."""
    spec = task(name)
    rows = list(rows)
    missing = [f for f in (*spec.fields, "label") if rows and f not in rows[0]]
    if missing:
        raise ValueError(
            f"to_text({name!r}): the rows lack the column(s) {missing}; "
            f"they have {sorted(rows[0])}."
        )
    return [spec.source(r) for r in rows], [spec.labels[r["label"]] for r in rows]


def fit_sources(tokenizer, name: str, rows, max_len: int) -> tuple[list[str], int]:
    """The input strings of ``rows`` (as :func:`to_text`), each at most ``max_len`` tokens
    (special tokens included), made to fit by shortening only the *first* field from its end —
    the premise of a pair, never the hypothesis. Returns the strings and how many were shortened."""
    spec, rows = task(name), list(rows)
    sources = [spec.source(r) for r in rows]
    lengths = [len(ids) for ids in tokenizer(sources)["input_ids"]]
    first, cut = spec.fields[0], 0
    for k, (row, length) in enumerate(zip(rows, lengths)):
        if length <= max_len:
            continue
        pieces = tokenizer.tokenize(row[first])
        keep = len(pieces) - (length - max_len)
        while True:  # decoding pieces back to text can change their count a little
            if keep < 1:
                raise ValueError(
                    f"fit_sources({name!r}): row {k} does not fit {max_len} tokens even with "
                    f"an empty {first!r}; raise max_len."
                )
            sources[k] = spec.source(
                {**row, first: tokenizer.convert_tokens_to_string(pieces[:keep])}
            )
            if len(tokenizer(sources[k])["input_ids"]) <= max_len:
                break
            keep -= 1
        cut += 1
    return sources, cut


def parse_label(name: str, generated: str) -> int:
    """The label id whose string ``generated`` is (ignoring case and white space, which WordPiece
    decoding puts around ``_``), else :data:`INVALID`."""
    text = "".join(generated.split()).lower()
    labels = task(name).labels
    return labels.index(text) if text in labels else INVALID


# --------------------------------------------------------------------------------------------
# Span corruption


def span_lengths(
    length: int, noise_density: float = 0.15, mean_span: float = 3.0
) -> tuple[int, int, int]:
    """``(noise tokens, noise spans, non-noise tokens)`` for a sequence of ``length`` tokens, as T5
    computes them."""
    length = max(length, 2)
    noise = min(max(int(round(length * noise_density)), 1), length - 1)
    spans = max(int(round(noise / mean_span)), 1)
    return noise, spans, length - noise


def expected_lengths(
    tokens_length: int, noise_density: float = 0.15, mean_span: float = 3.0
) -> tuple[int, int]:
    """Lengths of the corrupted input and the target (each with one end-of-sequence token).

    The inputs keep every non-noise token and one sentinel per span; the targets hold every noise
    token and one sentinel per span. T5's pretraining packs 568 tokens into inputs of 512 and
    targets of 114 this way (``random_spans_helper`` in the T5 code).
    """
    noise, spans, nonnoise = span_lengths(tokens_length, noise_density, mean_span)
    return nonnoise + spans + 1, noise + spans + 1


def _random_segmentation(n_items: int, n_segments: int, generator: torch.Generator) -> torch.Tensor:
    """Split ``n_items`` into ``n_segments`` non-empty segments, every split equally likely; their
    lengths."""
    starts = torch.zeros(n_items, dtype=torch.long)
    cuts = torch.randperm(n_items - 1, generator=generator)[: n_segments - 1] + 1
    starts[cuts] = 1
    segment = torch.cumsum(starts, 0)
    return torch.bincount(segment, minlength=n_segments)


def noise_mask(
    length: int, generator: torch.Generator, noise_density: float = 0.15, mean_span: float = 3.0
) -> torch.Tensor:
    """A boolean mask of the tokens to corrupt: non-noise and noise spans alternate, starting with
    non-noise."""
    noise, spans, nonnoise = span_lengths(length, noise_density, mean_span)
    noise_lengths = _random_segmentation(noise, spans, generator)
    keep_lengths = _random_segmentation(nonnoise, spans, generator)
    mask = torch.cat(
        [
            torch.cat([torch.zeros(k, dtype=torch.bool), torch.ones(n, dtype=torch.bool)])
            for k, n in zip(keep_lengths.tolist(), noise_lengths.tolist())
        ]
    )
    return mask[:length]


def corrupt_with_mask(
    ids: Sequence[int], mask: Sequence[bool], sentinels: Sequence[int]
) -> tuple[list[int], list[int]]:
    """Replace each run of ``True`` in ``mask`` by one sentinel (``sentinels[0]``, then
    ``sentinels[1]``, ...); the targets are each sentinel followed by the run it replaced."""
    inputs, targets, span = [], [], -1
    for i, (token, noisy) in enumerate(zip(ids, mask)):
        if noisy:
            if i == 0 or not mask[i - 1]:
                span += 1
                inputs.append(sentinels[span])
                targets.append(sentinels[span])
            targets.append(token)
        else:
            inputs.append(token)
    return inputs, targets


def span_corrupt(
    ids: Sequence[int],
    sentinels: Sequence[int],
    generator: torch.Generator,
    eos: int | None = None,
    noise_density: float = 0.15,
    mean_span: float = 3.0,
) -> tuple[list[int], list[int]]:
    """``(inputs, targets)`` for one token sequence: each noise span becomes one sentinel in the
    input, and the target is each sentinel followed by the span it replaced (sentinels used in
    order: ``sentinels[0]`` first, as ``<extra_id_0>`` in T5's vocabulary)."""
    ids = list(ids)
    if len(ids) < 2:
        raise ValueError(f"span_corrupt: need at least 2 tokens to corrupt, got {len(ids)}.")
    mask = noise_mask(len(ids), generator, noise_density, mean_span).tolist()
    _, spans, _ = span_lengths(len(ids), noise_density, mean_span)
    if spans > len(sentinels):
        raise ValueError(
            f"span_corrupt: {spans} spans but only {len(sentinels)} sentinel ids; "
            "pass more or shorter text."
        )
    inputs, targets = corrupt_with_mask(ids, mask, sentinels)
    if eos is not None:
        inputs.append(eos)
        targets.append(eos)
    return inputs, targets


def reconstruct(
    inputs: Sequence[int], targets: Sequence[int], sentinels: Sequence[int], eos: int | None = None
) -> list[int]:
    """The original sequence from a :func:`span_corrupt` pair: put each span back in place of its
    sentinel."""
    strip = lambda s: (  # noqa: E731
        list(s[:-1]) if eos is not None and s and s[-1] == eos else list(s)
    )  # fmt: skip
    inputs, targets = strip(inputs), strip(targets)
    position = {s: i for i, s in enumerate(sentinels)}
    spans: dict[int, list[int]] = {}
    current = None
    for token in targets:
        if token in position:
            current = position[token]
            spans[current] = []
        elif current is None:
            raise ValueError("reconstruct: the targets must start with a sentinel.")
        else:
            spans[current].append(token)
    out = []
    for token in inputs:
        out.extend(spans[position[token]] if token in position else [token])
    return out


# --------------------------------------------------------------------------------------------
# Mixing tasks


def mixing_rates(
    sizes: dict[str, int],
    strategy: str = "proportional",
    cap: int | None = None,
    temperature: float = 1.0,
) -> dict[str, float]:
    """Sampling rate of each task (section 3.5.2 of the T5 paper); they sum to one.

    ``"equal"``: 1/M each. ``"proportional"``: ``min(e_m, K) / Σ_n min(e_n, K)`` with ``K = cap``
    (no limit when None). ``"temperature"``: the proportional rates (with the cap) raised to ``1/T``
    and renormalised; T = 1 is proportional mixing, T → ∞ approaches equal mixing.
    """
    if not sizes or any(n <= 0 for n in sizes.values()):
        raise ValueError(
            f"mixing_rates: every task needs a positive number of examples, got {sizes}."
        )
    if strategy == "equal":
        return {name: 1 / len(sizes) for name in sizes}
    if strategy not in ("proportional", "temperature"):
        raise ValueError(
            f"mixing_rates: unknown strategy {strategy!r}; "
            "use 'equal', 'proportional' or 'temperature'."
        )
    if temperature <= 0:
        raise ValueError(f"mixing_rates: the temperature must be positive, got {temperature}.")
    capped = {name: min(n, cap) if cap is not None else n for name, n in sizes.items()}
    total = sum(capped.values())
    rates = {name: n / total for name, n in capped.items()}
    if strategy == "temperature":
        scaled = {name: r ** (1 / temperature) for name, r in rates.items()}
        norm = sum(scaled.values())
        rates = {name: s / norm for name, s in scaled.items()}
    return rates


class MixtureSampler:
    """Draws the task of each example of a multi-task batch i.i.d. from the mixing rates, and an
    example of that task uniformly (with replacement, as an infinite mixture would)."""

    def __init__(self, sizes: dict[str, int], rates: dict[str, float], seed: int = 0) -> None:
        if set(sizes) != set(rates):
            raise ValueError(
                f"MixtureSampler: tasks {sorted(sizes)} and rates {sorted(rates)} differ."
            )
        if not math.isclose(sum(rates.values()), 1.0, abs_tol=1e-9):
            raise ValueError(f"MixtureSampler: the rates sum to {sum(rates.values())}, not 1.")
        self.names = list(sizes)
        self.sizes = sizes
        self.probs = torch.tensor([rates[n] for n in self.names], dtype=torch.float64)
        self.generator = torch.Generator().manual_seed(seed)

    def batch(self, size: int) -> list[tuple[str, int]]:
        """``size`` pairs ``(task name, row index)``."""
        tasks = torch.multinomial(
            self.probs, size, replacement=True, generator=self.generator
        ).tolist()
        return [
            (
                self.names[t],
                int(torch.randint(self.sizes[self.names[t]], (), generator=self.generator)),
            )
            for t in tasks
        ]


def empirical_rates(pairs: Sequence[tuple[str, int]], names: Sequence[str]) -> np.ndarray:
    """Share of each task among drawn ``(task, index)`` pairs, in the order of ``names``."""
    counts = {n: 0 for n in names}
    for name, _ in pairs:
        counts[name] += 1
    return np.array([counts[n] for n in names]) / max(1, len(pairs))


# --------------------------------------------------------------------------------------------
# Evaluation helpers (the loops are in tlcourse.t5_train)


def pad_targets(targets: Sequence[Sequence[int]]) -> torch.Tensor:
    """Target id lists padded with -100, the index the loss ignores."""
    out = torch.full((len(targets), max(map(len, targets))), -100)
    for i, row in enumerate(targets):
        out[i, : len(row)] = torch.tensor(list(row))
    return out


def encode_targets(tokenizer, targets: Sequence[str]) -> torch.Tensor:
    """Target strings as ids ending in ``eos`` and padded with -100."""
    return pad_targets(
        [
            tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            for t in targets
        ]
    )


def scores(predictions: torch.Tensor, labels: Sequence[int]) -> dict[str, float]:
    """Accuracy (an invalid prediction counts as wrong) and the share of invalid predictions."""
    labels = torch.as_tensor(list(labels))
    if predictions.shape != labels.shape:
        raise ValueError(
            f"scores: {tuple(predictions.shape)} predictions for {tuple(labels.shape)} labels."
        )
    return {
        "accuracy": (predictions == labels).float().mean().item(),
        "invalid": (predictions == INVALID).float().mean().item(),
    }
