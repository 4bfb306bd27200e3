"""Chapter 2: word2vec's skip-gram with negative sampling (SGNS), from scratch in PyTorch.

Mikolov et al. (2013b), "Distributed Representations of Words and Phrases and their
Compositionality": every word ``w`` has an input vector ``v_w`` (the embedding) and an output vector
``u_w``. For a centre word ``c`` and a context word ``o`` seen within its window, with ``k`` noise
words ``n_i`` drawn from ``P_n(w) ∝ count(w)^0.75``, SGNS minimises (eq. 4 of the paper)

    L = -log σ(u_o·v_c) - Σ_i log σ(-u_{n_i}·v_c).

Like the original C code (and gensim), training is plain SGD with a linearly decaying learning rate,
with frequent words subsampled and a *dynamic* window (each centre word uses a window ``b`` drawn
uniformly from 1..window). The gradient is written out (:func:`sgns_grads`) and applied with
``scatter_add_`` to the rows a batch touches, so a step costs O(batch · k · dim), not
O(vocab · dim).
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch

from .train import progress_bar

# --------------------------------------------------------------------------------------------
# The corpus


@dataclass
class Corpus:
    """Sentences as one id array: ``ids[i]`` is a word id, ``sentence[i]`` the sentence it belongs
    to.

    ``itos``/``counts`` are the vocabulary (words seen at least ``min_count`` times, most frequent
    first).
    """

    itos: list[str]
    counts: np.ndarray
    ids: np.ndarray
    sentence: np.ndarray
    n_raw_tokens: int

    @property
    def stoi(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.itos)}

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], min_count: int = 5) -> "Corpus":
        sentences = [list(s) for s in sentences]
        freq = Counter(w for s in sentences for w in s)
        itos = sorted((w for w, c in freq.items() if c >= min_count), key=lambda w: (-freq[w], w))
        stoi = {w: i for i, w in enumerate(itos)}
        ids, sent = [], []
        for k, s in enumerate(sentences):
            kept = [stoi[w] for w in s if w in stoi]
            ids.extend(kept)
            sent.extend([k] * len(kept))
        return cls(
            itos,
            np.array([freq[w] for w in itos], dtype=np.int64),
            np.array(ids, dtype=np.int64),
            np.array(sent, dtype=np.int64),
            sum(len(s) for s in sentences),
        )


def corpus_sentences(data_dir=None, extra_words: int | None = 0, seed: int = 0) -> list[list[str]]:
    """The chapter's corpus: :func:`tlcourse.text.corpus_lines` (the Gutenberg selection and the
    WikiText-2 valid/test text, plus ``extra_words`` words sampled from the larger pretraining
    corpus), lower-cased; WikiText's ``<unk>`` and tokens without a letter or digit are dropped."""
    from .text import UNK, corpus_lines

    out = []
    for line in corpus_lines(extra_words, seed, data_dir):
        words = [t.lower() for t in line if t != UNK and any(ch.isalnum() for ch in t)]
        if len(words) > 1:
            out.append(words)
    return out


# --------------------------------------------------------------------------------------------
# Subsampling, noise distribution, dynamic window


def keep_probability(counts: np.ndarray, sample: float) -> np.ndarray:
    """Probability of keeping each occurrence of a word with frequency ``f = count / total``.

    Mikolov et al. (2013b) discard a word with probability ``1 - sqrt(t / f)``; the released C code
    (and gensim) keep it with probability ``(sqrt(f / t) + 1) · t / f``, capped at 1, which we use
    so as to match gensim. Words rarer than about ``t`` are always kept.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if sample <= 0:
        return np.ones_like(counts)
    threshold = sample * counts.sum()
    return np.minimum(1.0, (np.sqrt(counts / threshold) + 1.0) * threshold / counts)


def noise_distribution(counts: np.ndarray, power: float = 0.75) -> np.ndarray:
    """``P_n(w) = count(w)^power / Σ count^power``: the unigram distribution flattened (Mikolov
    et al. 2013b)."""
    p = np.asarray(counts, dtype=np.float64) ** power
    return p / p.sum()


def noise_table(
    counts: np.ndarray, size: int, generator: np.random.Generator, power: float = 0.75
) -> torch.Tensor:
    """A table of word ids drawn from :func:`noise_distribution`; indexing it uniformly samples
    noise words in O(1) (the C code's unigram table)."""
    cdf = np.cumsum(noise_distribution(counts, power))
    ids = np.searchsorted(cdf, generator.random(size) * cdf[-1])
    return torch.from_numpy(np.minimum(ids, len(counts) - 1))


def skipgram_pairs(
    ids: torch.Tensor, sentence: torch.Tensor, window: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(centre, context) pairs with a dynamic window, never across a sentence boundary.

    Each centre position draws ``b ~ U{1..window}`` and pairs with the words up to ``b`` positions
    on either side, so a context word at distance ``d`` is used with probability
    ``(window-d+1)/window``.
    """
    b = torch.randint(1, window + 1, (len(ids),), generator=generator)
    centres, contexts = [], []
    for d in range(1, window + 1):
        same = sentence[:-d] == sentence[d:]
        right = same & (b[:-d] >= d)  # centre i, context i + d
        left = same & (b[d:] >= d)  # centre i + d, context i
        centres += [ids[:-d][right], ids[d:][left]]
        contexts += [ids[d:][right], ids[:-d][left]]
    return torch.cat(centres), torch.cat(contexts)


# --------------------------------------------------------------------------------------------
# The loss and its gradient


def sgns_loss(v: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """SGNS loss per pair, ``-log σ(u_o·v) - Σ_i log σ(-u_i·v)``.

    ``v``: centre vectors (B, d); ``u``: output vectors (B, 1 + k, d), column 0 the true context
    and columns 1..k the noise words. Returns (B,).
    """
    score = (u * v[:, None, :]).sum(-1)
    logsig = torch.nn.functional.logsigmoid
    return -(logsig(score[:, 0]) + logsig(-score[:, 1:]).sum(-1))


def sgns_grads(v: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`sgns_loss` and its gradients w.r.t. ``v`` and ``u``, written out:
    ``(loss, grad_v, grad_u)``.

    With ``s = σ(u·v)`` and the label ``y = 1`` for the context, ``0`` for noise:
    ``∂L/∂v = Σ_j (s_j - y_j) u_j`` and ``∂L/∂u_j = (s_j - y_j) v`` (tested against finite
    differences).
    """
    score = (u * v[:, None, :]).sum(-1)
    loss = -(
        torch.nn.functional.logsigmoid(score[:, 0])
        + torch.nn.functional.logsigmoid(-score[:, 1:]).sum(-1)
    )
    g = torch.sigmoid(score)
    g[:, 0] -= 1.0
    grad_v = torch.bmm(g[:, None, :], u).squeeze(1)
    grad_u = g[:, :, None] * v[:, None, :]
    return loss, grad_v, grad_u


# --------------------------------------------------------------------------------------------
# Training


@dataclass(frozen=True)
class SGNSConfig:
    """word2vec's hyper-parameters, named as in gensim's ``Word2Vec``."""

    vector_size: int = 100
    window: int = 5
    negative: int = 5
    sample: float = 1e-3
    epochs: int = 5
    alpha: float = 0.025  # initial learning rate, decayed linearly to min_alpha
    min_alpha: float = 0.0001
    batch: int = 1024  # pairs per SGD step (measured fastest on 2 cores)
    seed: int = 0


@dataclass
class TrainStats:
    seconds: float
    words_per_second: (
        float  # corpus words processed per second (gensim's convention, before subsampling)
    )
    pairs: int
    loss: list[float]  # mean loss per epoch


def train_sgns(
    corpus: Corpus, cfg: SGNSConfig, progress: bool = True
) -> tuple[torch.Tensor, torch.Tensor, TrainStats]:
    """Train SGNS on ``corpus``; returns input vectors ``W`` (the embeddings), output vectors ``C``,
    stats."""
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    vocab, dim = len(corpus.itos), cfg.vector_size
    # word2vec's initialisation: inputs uniform in ±0.5/dim, outputs zero.
    W = (torch.rand(vocab, dim, generator=gen) - 0.5) / dim
    C = torch.zeros(vocab, dim)
    keep = keep_probability(corpus.counts, cfg.sample)[corpus.ids]
    table = noise_table(corpus.counts, 10_000_000, rng)
    ids, sentence = torch.from_numpy(corpus.ids), torch.from_numpy(corpus.sentence)
    # The learning rate decays with the expected number of pairs (what subsampling leaves of the
    # corpus).
    expected = int(
        keep.sum() * sum(2 * (cfg.window - d + 1) / cfg.window for d in range(1, cfg.window + 1))
    )
    total, done, losses, pairs_seen = expected * cfg.epochs, 0, [], 0
    start = time.perf_counter()
    bar = progress_bar(total=cfg.epochs, desc="SGNS epochs", progress=progress, leave=False)
    for _ in range(cfg.epochs):
        kept = torch.from_numpy(rng.random(len(keep)) < keep)
        centres, contexts = skipgram_pairs(ids[kept], sentence[kept], cfg.window, gen)
        order = torch.randperm(len(centres), generator=gen)
        centres, contexts = centres[order], contexts[order]
        epoch_loss = 0.0
        for s in range(0, len(centres), cfg.batch):
            c, o = centres[s : s + cfg.batch], contexts[s : s + cfg.batch]
            targets = torch.cat(
                [
                    o[:, None],
                    table[torch.randint(len(table), (len(c), cfg.negative), generator=gen)],
                ],
                1,
            )
            lr = max(cfg.min_alpha, cfg.alpha * (1 - done / total))
            done += len(c)
            v = W.index_select(0, c)
            u = C.index_select(0, targets.reshape(-1)).view(len(c), cfg.negative + 1, dim)
            loss, grad_v, grad_u = sgns_grads(v, u)
            epoch_loss += loss.sum().item()
            # scatter_add_ sums the updates of repeated rows (hogwild within a batch, as word2vec's
            # threads).
            W.scatter_add_(0, c[:, None].expand(-1, dim), grad_v.mul_(-lr))
            C.scatter_add_(
                0, targets.reshape(-1, 1).expand(-1, dim), grad_u.reshape(-1, dim).mul_(-lr)
            )
        pairs_seen += len(centres)
        losses.append(epoch_loss / max(1, len(centres)))
        bar.update()
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    bar.close()
    seconds = time.perf_counter() - start
    return W, C, TrainStats(seconds, corpus.n_raw_tokens * cfg.epochs / seconds, pairs_seen, losses)


# --------------------------------------------------------------------------------------------
# The library way


def _stable_hash(text: str) -> int:
    """gensim seeds each word's initial vector with ``hashfxn(word + str(seed))``; Python's own
    ``hash`` changes between processes (PYTHONHASHSEED), so runs would differ. CRC32 does not."""
    import zlib

    return zlib.crc32(text.encode("utf-8"))


def gensim_word2vec(
    sentences: Sequence[Sequence[str]], cfg: SGNSConfig, min_count: int = 5, workers: int = 1
) -> tuple[list[str], torch.Tensor, float]:
    """gensim's ``Word2Vec`` (skip-gram, negative sampling) with the same hyper-parameters as
    ``cfg``.

    Returns ``(words most frequent first, vectors, seconds)``. ``workers=1`` is deterministic;
    more workers are faster but their thread scheduling changes the result.
    """
    try:
        from gensim.models import Word2Vec
    except ImportError as err:  # the peers extra
        raise ImportError(
            "gensim is needed for the library comparison: pip install 'tlcourse[peers]'"
        ) from err
    start = time.perf_counter()
    model = Word2Vec(
        sentences=sentences,
        vector_size=cfg.vector_size,
        window=cfg.window,
        negative=cfg.negative,
        sample=cfg.sample,
        epochs=cfg.epochs,
        alpha=cfg.alpha,
        min_alpha=cfg.min_alpha,
        min_count=min_count,
        sg=1,
        hs=0,
        ns_exponent=0.75,
        workers=workers,
        seed=cfg.seed,
        hashfxn=_stable_hash,
    )
    seconds = time.perf_counter() - start
    return list(model.wv.index_to_key), torch.from_numpy(model.wv.vectors.copy()), seconds


# --------------------------------------------------------------------------------------------
# Cached training, shared by the chapters that reuse these vectors


def corpus_key(corpus: Corpus, min_count: int) -> dict:
    """What identifies the chapter's corpus in an artefact-cache key: its size and a digest of its
    vocabulary and counts (two corpora of the same size, e.g. two samples of the pretraining
    corpus, get different keys)."""
    digest = hashlib.sha256("\n".join(corpus.itos).encode())
    digest.update(np.ascontiguousarray(corpus.counts, dtype=np.int64).tobytes())
    return {
        "corpus": "gutenberg+wikitext2-valid-test+pretrain_corpus",
        "tokens": corpus.n_raw_tokens,
        "vocabulary": digest.hexdigest()[:16],
        "min_count": min_count,
    }


def pretrained_sgns(
    corpus: Corpus, cfg: SGNSConfig, min_count: int, progress: bool = True
) -> tuple[torch.Tensor, dict]:
    """Chapter 2's SGNS vectors for ``corpus``: from the artefact cache, or trained now (and
    cached).

    Returns ``(vectors, training stats)``; the rows follow ``corpus.itos``.
    """
    from dataclasses import asdict

    from . import hub

    def compute():
        W, _, stats = train_sgns(corpus, cfg, progress=progress)
        return {"vectors": W}, asdict(stats)

    state, stats = hub.cached_tensors(
        "ch02-sgns", {**corpus_key(corpus, min_count), **asdict(cfg)}, compute, verbose=progress
    )
    return state["vectors"], stats
