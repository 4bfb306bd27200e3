"""Chapter 2: the ways a downstream model can use pretrained word vectors, and what the
pretraining corpus covers of the task.

The classifier is chapter 1's :class:`~tlcourse.bow.BagOfWords`; only its embedding layer
changes between the modes:

* ``scratch``   — random embeddings, trained with the task;
* ``frozen``    — the pretrained vectors, never updated (feature extraction);
* ``fine-tuned``— initialised with the pretrained vectors, then trained with the task.

:func:`modes_curve` runs ``scratch`` once and the two other modes for each set of pretrained
vectors (SGNS and GloVe), all with one vocabulary, the same hidden layer and head, the same
labelled subsets (nested, class-balanced budgets from chapter 1) and the same optimiser, so that
the differences between conditions are paired by seed (:func:`seed_table`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np
import torch

from ..config import Profiles
from ..bow import BagOfWords, finetune_eval
from ..data import label_budget_indices
from ..embeddings import Corpus, SGNSConfig, corpus_key
from ..glove import GloVeConfig, cooccurrence
from ..text import Vocab
from ..train import progress_bar, seeded
from ..viz import mean_se, seed_table  # noqa: F401  (the chapter calls ch.seed_table, ch.mean_se)
from ..wordvectors import WordVectors

MODES = ("scratch", "frozen", "fine-tuned")


@dataclass(frozen=True)
class EmbeddingChapterConfig:
    """Sizes of chapter 2 for one profile."""

    # words sampled from the larger pretraining corpus on top of Gutenberg + WikiText-2 (None: all
    # 20.1 M words). 0 in cpu: SGNS, gensim and GloVe cost time in proportion to the corpus.
    corpus_words: int | None = 0
    min_count: int = 5
    # cpu: fewer passes than the libraries' defaults (word2vec 5, our GloVe 15): the three trainings
    # are two thirds of the chapter's time, and the comparisons below hold at these sizes
    sgns: SGNSConfig = field(default_factory=lambda: SGNSConfig(epochs=4))
    glove: GloVeConfig = field(default_factory=lambda: GloVeConfig(epochs=8))
    restrict_vocab: int = (
        30_000  # analogy candidates: the N most frequent words (gensim's convention)
    )
    budgets: tuple[int, ...] = (250, 1000, 4000, 0)  # SST-2 training labels; 0 means all 67,349
    seeds: int = 8
    hidden: int = 64
    max_len: int = 48
    lr: float = 3e-3
    batch: int = 64
    epochs: int = 3  # passes over the labelled subset, within [min_steps, max_steps]
    min_steps: int = 200
    max_steps: int = 700  # with all 67,349 labels: 700 steps of 64, about two thirds of a pass


def smoke(cfg: EmbeddingChapterConfig) -> EmbeddingChapterConfig:
    """``cfg`` shrunk for a smoke run (``TLCOURSE_SMOKE=1``): a few steps and rows, the same
    switches and code paths."""
    return replace(
        cfg,
        corpus_words=0 if cfg.corpus_words == 0 else 20_000,
        sgns=replace(cfg.sgns, epochs=1),
        glove=replace(cfg.glove, epochs=1),
        budgets=(cfg.budgets[0], cfg.budgets[-1]),
        seeds=2,
        min_steps=5,
        max_steps=10,
    )


CONFIGS = Profiles(
    {
        "cpu": EmbeddingChapterConfig(),
        "gpu": EmbeddingChapterConfig(
            corpus_words=None,
            sgns=SGNSConfig(epochs=10),
            glove=GloVeConfig(epochs=25),
            seeds=10,
            max_steps=1000,
        ),
    },
    smoke=smoke,
)


def encode(vocab: Vocab, sentences: Sequence[str], max_len: int) -> torch.Tensor:
    """Whitespace tokens -> ids; words outside the vocabulary are dropped (an all-unknown sentence
    becomes ``[<unk>]``), so that averaging is over words the embedding knows."""
    stoi, pad = vocab.stoi, vocab.pad_id
    rows = []
    for sentence in sentences:
        ids = [stoi[w] for w in sentence.lower().split() if w in stoi][:max_len] or [0]
        rows.append(ids + [pad] * (max_len - len(ids)))
    return torch.tensor(rows, dtype=torch.long).reshape(len(sentences), max_len)


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


def task_vectors(wv: WordVectors, words: set[str]) -> WordVectors:
    """The rows of ``wv`` for the words in ``words``, in ``wv``'s order."""
    keep = [i for i, w in enumerate(wv.itos) if w in words]
    return WordVectors([wv.itos[i] for i in keep], wv.vectors[keep])


def conditions(names: Sequence[str], modes: Sequence[str] = MODES) -> list[str]:
    """The curve's condition names: ``scratch`` once, then ``"<vectors>, <mode>"`` for every
    pretrained set and every other mode (``"SGNS, frozen"``, ``"GloVe, fine-tuned"``, ...)."""
    return (["scratch"] if "scratch" in modes else []) + [
        f"{name}, {mode}" for name in names for mode in modes if mode != "scratch"
    ]


def modes_curve(
    vectors: Mapping[str, WordVectors],
    train,
    test,
    cfg: EmbeddingChapterConfig,
    modes: Sequence[str] = MODES,
    progress: bool = True,
) -> list[dict]:
    """Dev accuracy for every condition x label budget x seed (records, as chapter 1's
    ``learning_curves``); the conditions are :func:`conditions` of ``vectors``' names.

    ``vectors`` maps a name to a set of pretrained vectors; all share one vocabulary and one
    dimension, so that ``scratch`` (trained once) is the same baseline for each. Within a seed,
    every condition sees the same labelled subset, the same initial hidden layer and head, and the
    same minibatches: the differences between conditions are paired by seed. ``train`` and
    ``test`` are datasets with ``sentence`` and ``label`` columns (SST-2's train and validation
    splits).
    """
    sets = list(vectors.items())
    first = sets[0][1]
    for name, wv in sets[1:]:
        if wv.itos != first.itos or wv.vectors.shape != first.vectors.shape:
            raise ValueError(
                f"modes_curve: the vectors {name!r} and {sets[0][0]!r} must share one vocabulary "
                "and one dimension."
            )
    # Rows of words that occur in neither split are never read: keep only the others (the same
    # results in distribution, in less time).
    used = {w for split in (train, test) for s in split["sentence"] for w in s.lower().split()}
    sets = [(name, task_vectors(wv, used)) for name, wv in sets]
    first = sets[0][1]
    runs = [("scratch", first, "scratch")] if "scratch" in modes else []
    runs += [(f"{n}, {m}", wv, m) for n, wv in sets for m in modes if m != "scratch"]
    vocab = vocab_of(first)
    x_train, y_train = encode(vocab, train["sentence"], cfg.max_len), torch.tensor(train["label"])
    x_test, y_test = encode(vocab, test["sentence"], cfg.max_len), torch.tensor(test["label"])
    budgets = [b or len(y_train) for b in cfg.budgets]
    records = []
    bar = progress_bar(
        total=cfg.seeds * len(budgets) * len(runs), desc="downstream", progress=progress
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
            for condition, wv, mode in runs:
                with seeded(seed):  # the model's init and the run's draws
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
                records.append(
                    {"condition": condition, "budget": budget, "seed": seed, "accuracy": acc}
                )
                bar.update()
    bar.close()
    return records


def coverage(vocab: Vocab, sentences: Sequence[str]) -> float:
    """Share of the sentences' tokens that the embedding vocabulary knows."""
    tokens = [w for s in sentences for w in s.lower().split()]
    return sum(w in vocab.stoi for w in tokens) / max(1, len(tokens))


def count_histogram(corpus: Corpus, window: int, min_count: int) -> dict:
    """How large GloVe's co-occurrence counts ``X_ij`` are: the share of the non-zero counts in
    each bin ``[0, 1)``, ``[1, 10)``, ``[10, 100)``, ... (``share``, with the bin ``edges``) and at
    least 1, 10 and 100 (``at_least``). Cached with the corpus key (counting takes seconds)."""
    from .. import hub

    edges = torch.tensor([0.0, 1.0, 10.0, 100.0, 1000.0, float("inf")])

    def compute():
        counts = torch.from_numpy(cooccurrence(corpus, window)[2])
        share = torch.histogram(counts, edges.double())[0] / len(counts)
        return {"share": share.float()}, {"nonzeros": len(counts)}

    key = {**corpus_key(corpus, min_count), "window": window}
    state, meta = hub.cached_tensors("ch02-count-histogram", key, compute, verbose=False)
    share = state["share"].double()
    at_least = {int(t): float(share[i + 1 :].sum()) for i, t in enumerate(edges[1:4].tolist())}
    return {"edges": edges, "share": share, "at_least": at_least, "nonzeros": meta["nonzeros"]}


def corpus_coverage(
    corpus: Sequence[Sequence[str]], target: Sequence[Sequence[str]], min_count: int = 1
) -> float:
    """Share of the ``target``'s tokens (a task's text) whose word occurs at least ``min_count``
    times in ``corpus`` (a pretraining text), i.e. would get a vector; both are lists of token
    lists. The reference of exercise 2.5."""
    counts = Counter(w for sentence in corpus for w in sentence)
    tokens = [w for sentence in target for w in sentence]
    return sum(counts[w] >= min_count for w in tokens) / max(1, len(tokens))


def sample_tokens(
    sentences: Sequence[Sequence[str]], n_tokens: int, seed: int = 0
) -> list[Sequence[str]]:
    """Random sentences (without replacement) until they hold at least ``n_tokens`` tokens: a
    sample of one corpus the size of another."""
    out, total = [], 0
    for i in np.random.default_rng(seed).permutation(len(sentences)):
        if total >= n_tokens:
            break
        out.append(sentences[i])
        total += len(sentences[i])
    return out
