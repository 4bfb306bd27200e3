"""Chapter 2: GloVe, global vectors from a word-word co-occurrence matrix (Pennington et al. 2014).

GloVe fits ``w_i·w̃_j + b_i + b̃_j ≈ log X_ij`` for every non-zero co-occurrence count ``X_ij``,
by weighted least squares (eq. 8 of the paper)

    J = Σ_{ij} f(X_ij) (w_i·w̃_j + b_i + b̃_j - log X_ij)²,   f(x) = min(1, (x / x_max)^α),

with AdaGrad (learning rate 0.05, accumulators starting at 1, as in the released code). Counts come
from a symmetric window in which a pair ``d`` words apart adds ``1/d``. The word vector is
``w + w̃``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse
import torch

from .embeddings import Corpus
from .train import progress_bar


@dataclass(frozen=True)
class GloVeConfig:
    vector_size: int = 100
    window: int = 10
    x_max: float = 10.0  # the paper's 100 suits billions of tokens; counts here rarely reach it
    alpha: float = 0.75
    epochs: int = 15
    lr: float = 0.05
    batch: int = 8192
    seed: int = 0


def cooccurrence(corpus: Corpus, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-zero entries ``(i, j, X_ij)`` of the symmetric, 1/distance-weighted co-occurrence matrix,
    counted within sentences; sorted by ``(i, j)``."""
    vocab = len(corpus.itos)
    rows, cols, weights = [], [], []
    for d in range(1, window + 1):
        same = corpus.sentence[:-d] == corpus.sentence[d:]
        a, b = corpus.ids[:-d][same], corpus.ids[d:][same]
        rows += [a, b]
        cols += [b, a]
        weights += [np.full(2 * len(a), 1.0 / d)]
    # A sparse matrix sums the repeated (i, j) pairs: row by row, about 5x faster than sorting the
    # tens of millions of pairs (np.unique), the same counts up to rounding.
    counts = scipy.sparse.coo_matrix(
        (np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
        shape=(vocab, vocab),
    ).tocsr()
    counts.sum_duplicates()
    counts.sort_indices()
    i = np.repeat(np.arange(vocab, dtype=np.int64), np.diff(counts.indptr))
    return i, counts.indices.astype(np.int64), counts.data


def weighting(x: torch.Tensor, x_max: float, alpha: float) -> torch.Tensor:
    """GloVe's ``f(x) = (x / x_max)^α`` capped at 1: rare pairs count less, frequent ones not too
    much."""
    return torch.clamp((x / x_max) ** alpha, max=1.0)


@dataclass
class GloVeStats:
    seconds: float
    nonzeros: int
    loss: list[float]  # J / (2 · nonzeros) per epoch, the quantity the released code prints


def glove_grads(
    wi: torch.Tensor, wj: torch.Tensor, f: torch.Tensor, log_x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The batch's ``Σ f·diff²`` and the gradients of half of it, written out by hand.

    ``wi``/``wj`` are rows ``[w | b]`` and ``[w̃ | b̃]``; ``diff = w·w̃ + b + b̃ - log X``. Then
    ``∂/∂w_i = f·diff·w̃_j`` and ``∂/∂b_i = f·diff`` (and symmetrically for ``j``): the factor 2 of
    the derivative of eq. 8 is folded into the learning rate, as in the paper's code.
    """
    dim = wi.shape[1] - 1
    diff = (wi[:, :dim] * wj[:, :dim]).sum(1) + wi[:, dim] + wj[:, dim] - log_x
    fdiff = f * diff
    grad_i = torch.cat([fdiff[:, None] * wj[:, :dim], fdiff[:, None]], 1)
    grad_j = torch.cat([fdiff[:, None] * wi[:, :dim], fdiff[:, None]], 1)
    return (fdiff * diff).sum(), grad_i, grad_j


def train_glove(
    corpus: Corpus, cfg: GloVeConfig, progress: bool = True
) -> tuple[torch.Tensor, GloVeStats]:
    """Count co-occurrences, fit GloVe with AdaGrad, and return ``w + w̃`` (vocab, dim) and
    stats."""
    start = time.perf_counter()
    rows, cols, counts = cooccurrence(corpus, cfg.window)
    i_all, j_all = torch.from_numpy(rows), torch.from_numpy(cols)
    x = torch.from_numpy(counts).float()
    f, log_x = weighting(x, cfg.x_max, cfg.alpha), torch.log(x)
    gen = torch.Generator().manual_seed(cfg.seed)
    vocab, dim = len(corpus.itos), cfg.vector_size
    # Parameters: [w | b] and [w̃ | b̃] as one (vocab, dim + 1) matrix each, so one update covers
    # both.
    w = torch.cat([(torch.rand(vocab, dim, generator=gen) - 0.5) / dim, torch.zeros(vocab, 1)], 1)
    w_ctx = torch.cat(
        [(torch.rand(vocab, dim, generator=gen) - 0.5) / dim, torch.zeros(vocab, 1)], 1
    )
    sq, sq_ctx = torch.ones_like(w), torch.ones_like(w_ctx)  # AdaGrad accumulators
    losses = []
    for _ in progress_bar(range(cfg.epochs), desc="GloVe epochs", progress=progress, leave=False):
        order, total = torch.randperm(len(x), generator=gen), 0.0
        for s in range(0, len(x), cfg.batch):
            p = order[s : s + cfg.batch]
            i, j = i_all[p], j_all[p]
            wi, wj = w.index_select(0, i), w_ctx.index_select(0, j)
            loss, grad_i, grad_j = glove_grads(wi, wj, f[p], log_x[p])
            total += loss.item()
            for params, acc, idx, grad in ((w, sq, i, grad_i), (w_ctx, sq_ctx, j, grad_j)):
                index = idx[:, None].expand(-1, dim + 1)
                params.scatter_add_(
                    0, index, grad.div(acc.index_select(0, idx).sqrt()).mul_(-cfg.lr)
                )
                acc.scatter_add_(0, index, grad * grad)
        losses.append(total / 2 / len(x))
    vectors = w[:, :dim] + w_ctx[:, :dim]
    return vectors, GloVeStats(time.perf_counter() - start, len(x), losses)
