"""Probing classifiers on frozen features: a per-task ScalarMix (or one layer) and a small head.

ELMo's *feature-based* transfer (Peters et al. 2018) trains only a mix of the frozen layers and a
task head; with a linear head (``hidden=0``) the same code is a *probe*: it measures what a layer
makes linearly accessible (Tenney et al. 2019; why linear: Hewitt & Liang 2019). Chapter 3 probes
its biLM, static word vectors and MiniLM; chapter 4 probes every layer of MiniLM.

* :class:`Standardize`: per-layer, per-dimension standardisation fitted on the training rows;
* :class:`HeadConfig` / :func:`fit_head` / :func:`train_head`: fit the mix (or a fixed layer) and
  the head, optionally with extra per-row inputs (ELMo's ``[x_k; ELMo_k]``); return a predictor or
  the test accuracy, and the mix's weights; :func:`most_frequent_tag` is the tagging baseline;
* :class:`ProbeTask`: a task's sentences and labels, with each representation's features on demand;
  :func:`tagging_data` is UPOS tagging on UD English-EWT.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import data
from .elmo import BiLM, ScalarMix, layer_features
from .train import seeded
from .wordvectors import WordVectors


class Standardize:
    """Per-layer, per-dimension standardisation fitted on the training features (shape
    (L, N, d))."""

    def __init__(self, x: torch.Tensor) -> None:
        self.mean, self.std = x.mean(1, keepdim=True), x.std(1, keepdim=True) + 1e-6

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


@dataclass(frozen=True)
class HeadConfig:
    """The head on the frozen features and its training: ``hidden = 0`` makes it linear (a
    probe)."""

    hidden: int = 128
    steps: int = 1500
    lr: float = 3e-3
    batch: int = 512


def fit_head(
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: HeadConfig = HeadConfig(),
    layer: int | None = None,
    seed: int = 0,
    extra: torch.Tensor | None = None,
) -> tuple[Callable[..., torch.Tensor], np.ndarray]:
    """Fit ``ScalarMix`` (or the single ``layer``) + a head on features ``x`` (L, N, d); return
    ``predict(x, extra=None) -> labels`` and the mix's weights ``s``.

    ``extra`` (N, d'), when given, is concatenated to the mixed representation before the head:
    ELMo's recipe ``[x_k; ELMo_k]`` adds the biLM to the task model's own context-independent
    input (Peters et al. 2018, section 3.3). The head is an MLP with ``cfg.hidden`` units, or linear
    when ``cfg.hidden = 0``; Adam on random minibatches of ``cfg.batch`` rows for ``cfg.steps``.
    """
    with seeded(seed):  # the head's init; the minibatches have their own generator
        mix = ScalarMix(x.shape[0])
        n_classes = int(y.max()) + 1
        width = x.shape[-1] + (0 if extra is None else extra.shape[-1])
        if cfg.hidden == 0:  # a linear probe (chapter 4's per-layer probes)
            head = nn.Linear(width, n_classes)
        else:
            head = nn.Sequential(
                nn.Linear(width, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, n_classes)
            )
    params = [*head.parameters(), *(mix.parameters() if layer is None else [])]
    opt = torch.optim.Adam(params, lr=cfg.lr)
    gen = torch.Generator().manual_seed(seed)

    def logits(feats: torch.Tensor, more: torch.Tensor | None) -> torch.Tensor:
        h = mix(feats) if layer is None else feats[layer]
        return head(h if more is None else torch.cat([h, more], -1))

    for _ in range(cfg.steps):
        idx = torch.randint(x.shape[1], (cfg.batch,), generator=gen)
        loss = F.cross_entropy(logits(x[:, idx], None if extra is None else extra[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()

    @torch.no_grad()
    def predict(feats: torch.Tensor, more: torch.Tensor | None = None) -> torch.Tensor:
        if (more is None) != (extra is None):
            raise ValueError(
                "predict needs `extra` features exactly when the head was fitted with them"
            )
        return logits(feats, more).argmax(-1)

    return predict, mix.weights.detach().numpy()


def train_head(
    x: torch.Tensor,
    y: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    cfg: HeadConfig = HeadConfig(),
    layer: int | None = None,
    seed: int = 0,
) -> tuple[float, np.ndarray]:
    """:func:`fit_head` on ``x``, then its accuracy on ``x_test``; returns ``(accuracy, s)``."""
    predict, weights = fit_head(x, y, cfg, layer, seed)
    return (predict(x_test) == y_test).float().mean().item(), weights


def most_frequent_tag(
    train_words: list[str], train_tags: torch.Tensor, test_words: list[str]
) -> torch.Tensor:
    """The baseline every tagger must beat: each test word gets the tag it had most often in the
    training words; a word never seen there gets the most frequent tag overall."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for w, t in zip(train_words, train_tags.tolist()):
        counts[w][t] += 1
    overall = Counter(train_tags.tolist()).most_common(1)[0][0]
    return torch.tensor(
        [counts[w].most_common(1)[0][0] if w in counts else overall for w in test_words]
    )


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

    def _rows(
        self, per_sentence: Callable[[list[list[str]]], list[torch.Tensor]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        def build(sentences):
            feats = per_sentence(sentences)  # each (L, n_tokens, d)
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
            return [
                torch.stack(
                    [wv.vectors[wv.stoi[w.lower()]] if w.lower() in wv.stoi else zero for w in s]
                )[None]
                for s in sentences
            ]

        return self._rows(lookup)

    def transformer_features(
        self, model_name: str, device="cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """All hidden states of a pretrained transformer, per word (first WordPiece)."""
        from .features import word_layer_features

        return self._rows(
            lambda s: word_layer_features(s, model_name, device=device, progress=False)
        )


def tagging_data(n_train: int, data_dir=None) -> ProbeTask:
    """UPOS on UD English-EWT: the first ``n_train`` training sentences; the whole dev set (2,001)
    as test."""
    ud = data.load_ud("en_ewt", data_dir=data_dir)
    train, dev = ud["train"].select(range(n_train)), ud["validation"]
    tag = {t: i for i, t in enumerate(data.UPOS_TAGS)}
    labels = lambda ds: torch.tensor([tag[u] for tags in ds["upos"] for u in tags])  # noqa: E731
    return ProbeTask(
        "UPOS", train["tokens"], dev["tokens"], labels(train), labels(dev), token_level=True
    )
