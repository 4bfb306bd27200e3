"""Chapter 1's model: a bag-of-words classifier whose body transfers, and the unigram distance of
two corpora.

The model is deliberately small (a bag-of-words network in the spirit of fastText, Joulin et al.
2017), so that a whole learning-curve experiment runs on a laptop CPU in about a minute:

* :class:`BagOfWords`: mean of word embeddings -> ReLU layer (the *body*) -> linear *head*;
* :func:`transfer_model`: a source model's body (copied) under a new head, frozen or not (Pan & Yang
  2010's *parameter transfer*; Yosinski et al. 2014); chapter 2 reuses the model with pretrained
  word vectors in its embedding layer;
* :func:`finetune_eval`: train what is trainable on a few labels, return the test accuracy;
* :func:`unigram_js_divergence`: the Jensen-Shannon divergence between two corpora's unigram (bag of
  words) distributions, a distance between domains (Ruder & Plank 2017).
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .text import Vocab
from .train import accuracy, fit, random_batches


class BagOfWords(nn.Module):
    """Mean of word embeddings -> ReLU layer (the *body*) -> linear *head*.

    ``body`` is what transfers between tasks; ``head`` is task-specific and replaced.
    """

    def __init__(
        self, vocab_size: int, pad_id: int, n_classes: int, dim: int = 64, hidden: int = 64
    ) -> None:
        super().__init__()
        self.embed = nn.EmbeddingBag(vocab_size, dim, mode="mean", padding_idx=pad_id)
        self.hidden = nn.Linear(dim, hidden)
        self.head = nn.Linear(hidden, n_classes)

    def body(self, ids: torch.Tensor) -> torch.Tensor:
        """Sentence features: ``relu(W mean_i e_{w_i} + b)`` for a ``(batch, max_len)`` id
        matrix."""
        return F.relu(self.hidden(self.embed(ids)))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(ids))

    def body_parameters(self) -> list[nn.Parameter]:
        return [*self.embed.parameters(), *self.hidden.parameters()]


def transfer_model(
    source: BagOfWords | None,
    n_classes: int,
    vocab: Vocab,
    dim: int,
    hidden: int,
    freeze: bool = False,
) -> BagOfWords:
    """A target model: the source's body (copied) with a new head, or a fresh model when ``source``
    is None.

    ``freeze=True`` makes the body a fixed feature extractor; only the head is then trained.
    """
    model = BagOfWords(len(vocab), vocab.pad_id, n_classes, dim, hidden)
    if source is not None:
        model.embed.load_state_dict(source.embed.state_dict())
        model.hidden.load_state_dict(source.hidden.state_dict())
    if freeze:
        if source is None:
            raise ValueError(
                "freeze=True needs a source model: freezing a random body is not transfer."
            )
        for p in model.body_parameters():
            p.requires_grad_(False)
    return model


def parameter_share(model: BagOfWords) -> float:
    """Fraction of parameters in the body (what transfer reuses)."""
    body = sum(p.numel() for p in model.body_parameters())
    return body / sum(p.numel() for p in model.parameters())


def classification_loss(model: nn.Module, batch) -> torch.Tensor:
    """Cross-entropy of ``model(x)`` against ``y`` for a batch ``(x, y)`` (the loss of
    :func:`tlcourse.train.fit`)."""
    x, y = batch
    return F.cross_entropy(model(x), y)


def finetune_eval(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
) -> float:
    """Train the trainable parameters of ``model`` on ``train = (x, y)``; return its accuracy on
    ``test``.

    Minibatches are drawn with a generator seeded by ``seed``, so a run is reproducible.
    """
    batches = random_batches(
        *train, batch_size=batch_size, generator=torch.Generator().manual_seed(seed)
    )
    fit(model, batches, classification_loss, steps=steps, lr=lr, progress=False)
    with torch.no_grad():
        return accuracy(model(test[0]), test[1])


def unigram_js_divergence(
    texts_a: Iterable[Sequence[str]], texts_b: Iterable[Sequence[str]]
) -> float:
    """Jensen-Shannon divergence (bits, in [0, 1]) between the unigram distributions of two corpora.

    JS(P, Q) = 1/2 KL(P || M) + 1/2 KL(Q || M), M = (P + Q) / 2 (Lin 1991): a symmetric, bounded
    distance between the marginals P(X) of two domains, used by Ruder & Plank (2017) to choose
    transfer sources. 0 means the same word distribution; 1 means no word in common.
    """
    ca, cb = Counter(), Counter()
    for t in texts_a:
        ca.update(t)
    for t in texts_b:
        cb.update(t)
    na, nb = sum(ca.values()), sum(cb.values())
    if na == 0 or nb == 0:
        raise ValueError("unigram_js_divergence: a corpus has no tokens.")
    words = sorted(set(ca) | set(cb))
    p = np.array([ca[w] / na for w in words])
    q = np.array([cb[w] / nb for w in words])
    m = (p + q) / 2

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        nz = a > 0  # 0 log 0 = 0
        return float(np.sum(a[nz] * np.log2(a[nz] / b[nz])))

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


__all__ = [
    "BagOfWords",
    "classification_loss",
    "finetune_eval",
    "parameter_share",
    "transfer_model",
    "unigram_js_divergence",
]
