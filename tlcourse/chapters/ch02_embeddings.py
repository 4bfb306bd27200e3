"""Chapter 2: the three ways a downstream model can use pretrained word vectors.

The classifier is chapter 1's :class:`~tlcourse.bow.BagOfWords`; only its embedding layer
changes between the modes:

* ``scratch``   — random embeddings, trained with the task;
* ``frozen``    — the pretrained vectors, never updated (feature extraction);
* ``fine-tuned``— initialised with the pretrained vectors, then trained with the task.

All three share one vocabulary (the embedding's), the same hidden layer and head, the same
labelled subsets (nested, class-balanced budgets from chapter 1) and the same optimiser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from ..bow import BagOfWords, finetune_eval
from ..data import label_budget_indices
from ..embeddings import SGNSConfig
from ..glove import GloVeConfig
from ..text import Vocab
from ..train import progress_bar
from ..wordvectors import WordVectors

MODES = ("scratch", "frozen", "fine-tuned")


@dataclass(frozen=True)
class EmbeddingChapterConfig:
    """Sizes of chapter 2 for one profile."""

    min_count: int = 5
    sgns: SGNSConfig = field(default_factory=SGNSConfig)
    glove: GloVeConfig = field(default_factory=GloVeConfig)
    restrict_vocab: int = (
        30_000  # analogy candidates: the N most frequent words (gensim's convention)
    )
    budgets: tuple[int, ...] = (250, 1000, 4000, 0)  # SST-2 training labels; 0 means all 67,349
    seeds: int = 3
    hidden: int = 64
    max_len: int = 48
    lr: float = 3e-3
    batch: int = 64
    epochs: int = 3  # passes over the labelled subset, within [min_steps, max_steps]
    min_steps: int = 200
    max_steps: int = 1500


CONFIGS: dict[str, EmbeddingChapterConfig] = {
    "cpu": EmbeddingChapterConfig(),
    "gpu": EmbeddingChapterConfig(
        sgns=SGNSConfig(epochs=10), glove=GloVeConfig(epochs=25), seeds=5, max_steps=3000
    ),
}


def encode(vocab: Vocab, sentences: Sequence[str], max_len: int) -> torch.Tensor:
    """Whitespace tokens -> ids; words outside the vocabulary are dropped (an all-unknown sentence
    becomes ``[<unk>]``), so that averaging is over words the embedding knows."""
    out = torch.full((len(sentences), max_len), vocab.pad_id, dtype=torch.long)
    for row, sentence in enumerate(sentences):
        ids = [vocab.stoi[w] for w in sentence.lower().split() if w in vocab.stoi][:max_len] or [0]
        out[row, : len(ids)] = torch.tensor(ids)
    return out


def vocab_of(wv: WordVectors) -> Vocab:
    return Vocab([Vocab.UNK, *wv.itos, Vocab.PAD])


def make_model(wv: WordVectors, mode: str, n_classes: int, hidden: int) -> BagOfWords:
    """The classifier for one mode (see the module docstring); ``<unk>``/``<pad>`` rows start at
    zero."""
    if mode not in MODES:
        raise ValueError(f"Unknown mode {mode!r}; choose one of {', '.join(MODES)}.")
    vocab = vocab_of(wv)
    model = BagOfWords(len(vocab), vocab.pad_id, n_classes, wv.vectors.shape[1], hidden)
    if mode != "scratch":
        with torch.no_grad():
            model.embed.weight.zero_()
            model.embed.weight[1:-1] = wv.vectors
    model.embed.weight.requires_grad_(mode != "frozen")
    return model


def steps_for(budget: int, cfg: EmbeddingChapterConfig) -> int:
    return int(np.clip(cfg.epochs * budget // cfg.batch, cfg.min_steps, cfg.max_steps))


def modes_curve(
    wv: WordVectors,
    train,
    test,
    cfg: EmbeddingChapterConfig,
    modes: Sequence[str] = MODES,
    progress: bool = True,
) -> list[dict]:
    """Dev accuracy for every mode x label budget x seed (records, as chapter 1's
    ``learning_curves``).

    ``train`` and ``test`` are datasets with ``sentence`` and ``label`` columns (SST-2's train and
    validation splits).
    """
    vocab = vocab_of(wv)
    x_train, y_train = encode(vocab, train["sentence"], cfg.max_len), torch.tensor(train["label"])
    x_test, y_test = encode(vocab, test["sentence"], cfg.max_len), torch.tensor(test["label"])
    budgets = [b or len(y_train) for b in cfg.budgets]
    records = []
    bar = progress_bar(
        total=cfg.seeds * len(budgets) * len(modes), desc="three modes", progress=progress
    )
    for seed in range(cfg.seeds):
        partial = [b for b in budgets if b < len(y_train)]
        subsets = label_budget_indices(y_train.numpy(), partial, seed=seed) if partial else {}
        for budget in budgets:
            rows = (
                torch.as_tensor(subsets[budget])
                if budget in subsets
                else torch.arange(len(y_train))
            )
            for mode in modes:
                torch.manual_seed(seed)
                model = make_model(wv, mode, 2, cfg.hidden)
                acc = finetune_eval(
                    model,
                    (x_train[rows], y_train[rows]),
                    (x_test, y_test),
                    steps=steps_for(budget, cfg),
                    batch_size=cfg.batch,
                    lr=cfg.lr,
                    seed=seed,
                )
                records.append({"condition": mode, "budget": budget, "seed": seed, "accuracy": acc})
                bar.update()
    bar.close()
    return records


def coverage(vocab: Vocab, sentences: Sequence[str]) -> float:
    """Share of the sentences' tokens that the embedding vocabulary knows."""
    tokens = [w for s in sentences for w in s.lower().split()]
    return sum(w in vocab.stoi for w in tokens) / max(1, len(tokens))
