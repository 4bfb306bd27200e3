"""Chapter 3: what the biLM's layers know — words in context, and two probing tasks.

* Noun/verb occurrences of ambiguous words, labelled by the word before them, and a
  nearest-neighbour agreement score (the static-vector baseline is the majority label);
* the two downstream tasks as precomputed features: UPOS tagging on UD English-EWT (one row per
  token) and SST-2 sentiment (one row per sentence, the mean of each layer over the sentence), from
  the biLM, from static word vectors, or from a transformer's hidden states.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from . import data
from .elmo import BiLM
from .elmo_tasks import ElmoChapterConfig, Standardize, layer_features, split_heldout
from .wordvectors import WordVectors

DETERMINERS = {"the", "a", "an", "this", "that", "his", "her", "my", "your", "their", "our", "its"}
VERB_CUES = {"to", "will", "would", "could", "can", "not", "did", "shall", "should", "may", "must", "might"}


def noun_verb_occurrences(sentences: Sequence[Sequence[str]], word: str) -> list[tuple[list[str], int, str]]:
    """``(sentence, position, "noun" | "verb")`` for each occurrence of ``word`` right after a determiner
    (noun) or a verbal cue such as *to* or *will* (verb)."""
    out = []
    for sentence in sentences:
        for i in range(1, len(sentence)):
            before = sentence[i - 1].lower()
            if sentence[i].lower() == word and before in DETERMINERS | VERB_CUES:
                out.append((list(sentence), i, "noun" if before in DETERMINERS else "verb"))
    return out


def nearest_neighbour_agreement(vectors: torch.Tensor, labels: np.ndarray) -> float:
    """Share of rows whose nearest other row (cosine) has the same label (leave-one-out 1-NN accuracy)."""
    unit = torch.nn.functional.normalize(vectors, dim=1)
    sims = unit @ unit.T
    sims.fill_diagonal_(-float("inf"))
    return float((labels[sims.argmax(1).numpy()] == labels).mean())


def contextual_neighbours(model: BiLM, queries: Sequence[Sequence[str]], pool: Sequence[Sequence[str]], word: str,
                          k: int = 3, layer: int = 2) -> pd.DataFrame:
    """For each query sentence, the ``k`` occurrences of ``word`` in ``pool`` whose biLM vectors are closest."""
    occurrences = [(s, i) for s in pool for i, w in enumerate(s) if w.lower() == word]
    pool_vectors = torch.stack([f[layer, i] for f, (_, i) in zip(layer_features(model, [s for s, _ in occurrences]), occurrences)])
    pool_unit = torch.nn.functional.normalize(pool_vectors, dim=1)
    rows = {}
    for query, feats in zip(queries, layer_features(model, queries)):
        position = [w.lower() for w in query].index(word)
        sims = pool_unit @ torch.nn.functional.normalize(feats[layer, position], dim=0)
        best = torch.topk(sims, k)
        rows[" ".join(query)] = [" ".join(_window(occurrences[i][0], occurrences[i][1])) + f"  ({s:.2f})"
                                 for s, i in zip(best.values.tolist(), best.indices.tolist())]
    return pd.DataFrame(rows).T.rename(columns=lambda c: f"neighbour {c + 1}")


def _window(sentence: Sequence[str], i: int, width: int = 4) -> list[str]:
    return [*sentence[max(0, i - width):i], f"[{sentence[i]}]", *sentence[i + 1:i + 1 + width]]


@dataclass
class ProbeTask:
    """A task as sentences and labels, with the features of each representation computed on demand.

    ``token_level``: one label per token (tagging) or one per sentence (its tokens are averaged).
    """

    name: str
    sentences: list[list[str]]
    test_sentences: list[list[str]]
    y: torch.Tensor
    y_test: torch.Tensor
    token_level: bool

    def _rows(self, per_sentence: Callable[[list[list[str]]], list[torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        def build(sentences):
            feats = per_sentence(sentences)   # each (L, n_tokens, d)
            if self.token_level:
                return torch.cat(feats, 1)
            return torch.stack([f.mean(1) for f in feats], 1)
        x, x_test = build(self.sentences), build(self.test_sentences)
        scale = Standardize(x)  # fitted on the training rows only
        return scale(x), scale(x_test)

    def features(self, model: BiLM) -> tuple[torch.Tensor, torch.Tensor]:
        """The biLM's layers, ``(L + 1, rows, 2·dim)`` for train and test."""
        return self._rows(lambda s: layer_features(model, s))

    def static_features(self, wv: WordVectors) -> tuple[torch.Tensor, torch.Tensor]:
        """Static vectors looked up lower-cased (zeros for unknown words), as a one-layer stack."""
        def lookup(sentences):
            zero = torch.zeros(wv.vectors.shape[1])
            return [torch.stack([wv.vectors[wv.stoi[w.lower()]] if w.lower() in wv.stoi else zero for w in s])[None]
                    for s in sentences]
        return self._rows(lookup)

    def transformer_features(self, model_name: str, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """All hidden states of a pretrained transformer, per word (first WordPiece)."""
        from .features import word_layer_features

        return self._rows(lambda s: word_layer_features(s, model_name, device=device, progress=False))


def tagging_data(cfg: ElmoChapterConfig, data_dir=None) -> ProbeTask:
    """UPOS on UD English-EWT: the first ``cfg.upos_train`` training sentences; the whole dev set as test."""
    ud = data.load_ud("en_ewt", data_dir=data_dir)
    train, dev = ud["train"].select(range(cfg.upos_train)), ud["validation"]
    tag = {t: i for i, t in enumerate(data.UPOS_TAGS)}
    labels = lambda ds: torch.tensor([tag[u] for tags in ds["upos"] for u in tags])  # noqa: E731
    return ProbeTask("UPOS", train["tokens"], dev["tokens"], labels(train), labels(dev), token_level=True)


def sentiment_data(cfg: ElmoChapterConfig, data_dir=None) -> ProbeTask:
    """SST-2: ``cfg.sst_train`` random training sentences (seeded); the validation set as test."""
    sst = data.load_sst2(data_dir=data_dir)
    rows = sorted(split_heldout(list(range(len(sst["train"]))), cfg.sst_train)[1])
    train, dev = sst["train"].select(rows), sst["validation"]
    return ProbeTask("SST-2", [s.split() for s in train["sentence"]], [s.split() for s in dev["sentence"]],
                     torch.tensor(train["label"]), torch.tensor(dev["label"]), token_level=False)
