"""Chapter 2: word vectors as a lookup table, and the standard intrinsic evaluations.

* Analogies "a is to b as c is to ?" answered by 3CosAdd (Mikolov, Yih & Zweig 2013; Levy &
  Goldberg 2014): ``argmax_{d ∉ {a,b,c}} cos(d, b - a + c)`` over unit vectors, restricted to the
  ``restrict_vocab`` most frequent words, and questions with a word outside them skipped — the
  convention of gensim's ``KeyedVectors.evaluate_word_analogies``.
* Word similarity: Spearman's ρ between cosine similarities and human scores (WordSim-353,
  SimLex-999, MEN), over the pairs whose two words are in the vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.stats import spearmanr

# The semantic sections of the Google analogy set; the others ("gram1-..." to "gram9-...") are
# syntactic.
SEMANTIC_SECTIONS = (
    "capital-common-countries",
    "capital-world",
    "currency",
    "city-in-state",
    "family",
)


@dataclass
class WordVectors:
    """``vectors[i]`` is the vector of ``itos[i]``; words are ordered from most to least
    frequent."""

    itos: list[str]
    vectors: torch.Tensor
    stoi: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.vectors = torch.as_tensor(self.vectors, dtype=torch.float32)
        if self.vectors.shape[0] != len(self.itos):
            raise ValueError(
                f"WordVectors: {len(self.itos)} words but {self.vectors.shape[0]} vectors."
            )
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.unit = torch.nn.functional.normalize(self.vectors, dim=1)

    def __contains__(self, word: str) -> bool:
        return word in self.stoi

    def __getitem__(self, word: str) -> torch.Tensor:
        return self.vectors[self.stoi[word]]

    def most_similar(self, word: str, topn: int = 5) -> list[tuple[str, float]]:
        """The ``topn`` nearest words by cosine similarity (the word itself excluded)."""
        if word not in self.stoi:
            raise KeyError(f"{word!r} is not in the vocabulary ({len(self.itos):,} words).")
        sims = self.unit @ self.unit[self.stoi[word]]
        sims[self.stoi[word]] = -np.inf
        best = torch.topk(sims, topn)
        return [(self.itos[i], round(float(s), 3)) for s, i in zip(best.values, best.indices)]


def three_cos_add(
    unit: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor
) -> torch.Tensor:
    """Answers to analogies ``a : b :: c : ?`` (id tensors of shape (Q,)) over the rows of ``unit``.

    ``unit`` holds unit-length vectors; the answer maximises ``cos(d, b - a + c)`` with ``a``, ``b``
    and ``c`` themselves excluded (3CosAdd).
    """
    target = unit[b] - unit[a] + unit[c]
    scores = target @ unit.T
    rows = torch.arange(len(a))
    for excluded in (a, b, c):
        scores[rows, excluded] = -torch.inf
    return scores.argmax(1)


def analogy_accuracy(
    wv: WordVectors, questions, restrict_vocab: int = 30_000, batch: int = 1024
) -> dict:
    """Accuracy on analogy questions (a ``datasets.Dataset`` with ``section``, ``a``, ``b``, ``c``,
    ``d``).

    Lower-cased; only the ``restrict_vocab`` most frequent words are candidates, and questions with
    any word outside them are skipped (gensim's convention). Returns overall, semantic and
    syntactic accuracy and the numbers of questions answered and skipped.
    """
    top = min(restrict_vocab, len(wv.itos))
    unit = wv.unit[:top]
    ids, sections = [], []
    for section, *words in zip(
        questions["section"], questions["a"], questions["b"], questions["c"], questions["d"]
    ):
        w = [x.lower() for x in words]
        if all(x in wv.stoi and wv.stoi[x] < top for x in w):
            ids.append([wv.stoi[x] for x in w])
            sections.append(section)
    if not ids:
        raise ValueError("analogy_accuracy: no question has all four words in the vocabulary.")
    ids = torch.tensor(ids)
    correct = torch.cat(
        [
            three_cos_add(unit, *ids[s : s + batch, :3].T) == ids[s : s + batch, 3]
            for s in range(0, len(ids), batch)
        ]
    ).numpy()
    semantic = np.array([s in SEMANTIC_SECTIONS for s in sections])
    return {
        "accuracy": float(correct.mean()),
        "semantic": float(correct[semantic].mean()) if semantic.any() else float("nan"),
        "syntactic": float(correct[~semantic].mean()) if (~semantic).any() else float("nan"),
        "answered": len(ids),
        "skipped": len(questions["a"]) - len(ids),
    }


def similarity_spearman(wv: WordVectors, pairs) -> dict:
    """Spearman's ρ between cosine similarity and human ``score`` over in-vocabulary word pairs."""
    kept = [
        (w1.lower(), w2.lower(), s)
        for w1, w2, s in zip(pairs["word1"], pairs["word2"], pairs["score"])
        if w1.lower() in wv.stoi and w2.lower() in wv.stoi
    ]
    if len(kept) < 3:
        raise ValueError(f"similarity_spearman: only {len(kept)} pairs are in the vocabulary.")
    cos = [float(wv.unit[wv.stoi[a]] @ wv.unit[wv.stoi[b]]) for a, b, _ in kept]
    return {
        "spearman": float(spearmanr(cos, [s for *_, s in kept]).statistic),
        "pairs": len(kept),
        "oov": len(pairs["word1"]) - len(kept),
    }


def evaluate(
    wv: WordVectors, analogies, similarity_sets: dict, restrict_vocab: int = 30_000
) -> dict:
    """One row of the chapter's comparison table: analogy accuracy and every similarity ρ."""
    row = {
        f"analogy {k}": v
        for k, v in analogy_accuracy(wv, analogies, restrict_vocab).items()
        if k in ("accuracy", "semantic", "syntactic")
    }
    for name, pairs in similarity_sets.items():
        row[name] = similarity_spearman(wv, pairs)["spearman"]
    return row
