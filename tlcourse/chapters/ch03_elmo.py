"""Chapter 3: pretraining the small ELMo, what its layers know, and using them downstream.

* :class:`ElmoChapterConfig` / :data:`CONFIGS`: the chapter's sizes per profile;
* :func:`pretrain_bilm` trains :class:`~tlcourse.elmo.BiLM` on the cased, tokenised Gutenberg +
  WikiText-2 text (:func:`tlcourse.text.lm_sentences`; cached in the artefact cache by its config);
* words in context: noun/verb occurrences of ambiguous words, labelled by the word before them, a
  nearest-neighbour agreement score (the static-vector baseline is the majority label), and each
  query's closest occurrences in the corpus;
* the two downstream tasks as :class:`~tlcourse.probes.ProbeTask` s, UPOS tagging on UD English-EWT
  (:func:`tlcourse.probes.tagging_data`, one row per token) and SST-2 sentiment
  (:func:`sentiment_data`, one row per sentence), on which :func:`tlcourse.probes.train_head` fits a
  per-task ScalarMix and a small MLP: ELMo's *feature-based* transfer;
* :func:`finetune_lm_classifier` is the GPT-1 alternative: fine-tune the forward LM itself on the
  task with ``L = L_task + λ L_LM`` (Radford et al. 2018, eq. 5).
"""

from __future__ import annotations

import copy
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .. import data, hub
from ..elmo import BiLM, BiLMConfig, layer_features, make_batch
from ..probes import HeadConfig, ProbeTask
from ..text import BOS, EOS, UNK
from ..train import adamw, progress_bar


@dataclass(frozen=True)
class ElmoChapterConfig:
    """Sizes of chapter 3 for one profile."""

    bilm: BiLMConfig = field(default_factory=BiLMConfig)
    min_count: int = 3  # output vocabulary of the LM (cased words)
    max_len: int = 30  # tokens per training sentence
    heldout: int = 1000  # sentences held out for perplexity
    pretrain_steps: int = 600
    pretrain_batch: int = 64
    pretrain_lr: float = 2e-3
    upos_train: int = 3000  # UD English-EWT training sentences for the tagger (dev: all 2,001)
    sst_train: int = 5000  # SST-2 training sentences (validation: all 872)
    head: HeadConfig = field(default_factory=HeadConfig)  # ScalarMix + MLP on the frozen features
    gpt_lambdas: tuple[float, ...] = (0.0, 0.5)
    gpt_seeds: int = 3
    gpt_train: int = 2000
    gpt_steps: int = 100
    gpt_batch: int = 32
    gpt_lr: float = 1e-3


CONFIGS = {
    "cpu": ElmoChapterConfig(),
    "gpu": ElmoChapterConfig(
        pretrain_steps=3000, upos_train=12544, sst_train=20000, gpt_seeds=5, gpt_steps=300
    ),
}


# --------------------------------------------------------------------------------------------
# Vocabulary and held-out sentences


def word_vocab(sentences: Sequence[Sequence[str]], min_count: int) -> list[str]:
    """``<unk>``, ``<s>``, ``</s>`` then the words seen ``min_count`` times, most frequent first
    (the adaptive softmax wants frequent words at small ids)."""
    counts = Counter(w for s in sentences for w in s)
    words = sorted(
        (w for w, c in counts.items() if c >= min_count and w != UNK), key=lambda w: (-counts[w], w)
    )
    return [UNK, BOS, EOS, *words]


def split_heldout(sentences: list, n: int, seed: int = 0) -> tuple[list, list]:
    """``(rest, held out)``: ``n`` items chosen at random (seeded), and all the others."""
    order = np.random.default_rng(seed).permutation(len(sentences))
    return [sentences[i] for i in order[n:]], [sentences[i] for i in order[:n]]


# --------------------------------------------------------------------------------------------
# Pretraining and perplexity


@torch.no_grad()
def perplexity(
    model: BiLM, sentences: Sequence[Sequence[str]], stoi: dict[str, int], batch: int = 100
) -> tuple[float, float]:
    """Forward and backward perplexity ``exp(mean NLL)`` over the predicted positions of
    ``sentences``."""
    was_training = model.training
    model.eval()
    totals, n = np.zeros(2), 0
    for s in range(0, len(sentences), batch):
        chars, words, lengths = make_batch(sentences[s : s + batch], stoi, model.cfg.max_chars)
        k = int((lengths - 1).sum())
        totals += np.array([loss.item() for loss in model.lm_losses(chars, words, lengths)]) * k
        n += k
    model.train(was_training)
    return math.exp(totals[0] / n), math.exp(totals[1] / n)


def unigram_perplexity(
    train: Sequence[Sequence[str]], heldout: Sequence[Sequence[str]], itos: list[str]
) -> float:
    """The perplexity of predicting every held-out word from its training frequency alone (no
    context)."""
    stoi = {w: i for i, w in enumerate(itos)}
    counts = np.ones(len(itos))  # add-one, so no held-out word has probability 0
    for s in train:
        for w in [*s, EOS]:
            counts[stoi.get(w, 0)] += 1
    logp = np.log(counts / counts.sum())
    nll = [-logp[stoi.get(w, 0)] for s in heldout for w in [*s, EOS]]
    return float(np.exp(np.mean(nll)))


def pretrain_bilm(
    train: list, itos: list[str], cfg: ElmoChapterConfig, device="cpu", progress: bool = True
) -> tuple[BiLM, dict]:
    """Train the biLM on length-bucketed batches for ``cfg.pretrain_steps`` steps (Adam, clipped),
    cached."""
    stoi = {w: i for i, w in enumerate(itos)}
    key = {
        "corpus": "gutenberg+wikitext2-valid-test",
        "sentences": len(train),
        "vocab": len(itos),
        **{
            k: v
            for k, v in asdict(cfg).items()
            if k.startswith(("bilm", "pretrain", "max_len", "min_count"))
        },
    }

    def build() -> BiLM:
        torch.manual_seed(0)
        return BiLM(len(itos), cfg.bilm)

    def fit(model: BiLM) -> dict:
        model.to(device).train()
        rng = np.random.default_rng(0)
        order = np.argsort([len(s) for s in train], kind="stable")
        batches = [
            order[i : i + cfg.pretrain_batch] for i in range(0, len(order), cfg.pretrain_batch)
        ]
        rng.shuffle(batches)
        opt = adamw(model.parameters(), lr=cfg.pretrain_lr, weight_decay=0.0)
        history, start = [], time.perf_counter()
        bar = progress_bar(
            range(cfg.pretrain_steps), progress=progress, desc="pretrain biLM", leave=False
        )
        for step in bar:
            chars, words, lengths = make_batch(
                [train[i] for i in batches[step % len(batches)]], stoi, cfg.bilm.max_chars
            )
            fwd, bwd = model.lm_losses(chars.to(device), words.to(device), lengths)
            opt.zero_grad()
            (fwd + bwd).backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
            opt.step()
            history.append((fwd.item(), bwd.item()))
            bar.set_postfix(fwd=f"{fwd.item():.2f}", bwd=f"{bwd.item():.2f}")
        model.cpu().eval()
        return {
            "seconds": time.perf_counter() - start,
            "loss": history,
            "epochs": cfg.pretrain_steps * cfg.pretrain_batch / len(train),
        }

    model, meta = hub.cached_module("ch03-bilm", key, build, fit, verbose=progress)
    return model.eval(), meta


# --------------------------------------------------------------------------------------------
# Words in context, and the sentence-level task


DETERMINERS = {"the", "a", "an", "this", "that", "his", "her", "my", "your", "their", "our", "its"}
VERB_CUES = {
    "to",
    "will",
    "would",
    "could",
    "can",
    "not",
    "did",
    "shall",
    "should",
    "may",
    "must",
    "might",
}


def noun_verb_occurrences(
    sentences: Sequence[Sequence[str]], word: str
) -> list[tuple[list[str], int, str]]:
    """``(sentence, position, "noun" | "verb")`` for each occurrence of ``word`` right after a
    determiner (noun) or a verbal cue such as *to* or *will* (verb)."""
    out = []
    for sentence in sentences:
        for i in range(1, len(sentence)):
            before = sentence[i - 1].lower()
            if sentence[i].lower() == word and before in DETERMINERS | VERB_CUES:
                out.append((list(sentence), i, "noun" if before in DETERMINERS else "verb"))
    return out


def nearest_neighbour_agreement(vectors: torch.Tensor, labels: np.ndarray) -> float:
    """Share of rows whose nearest other row (cosine) has the same label (leave-one-out 1-NN
    accuracy)."""
    unit = torch.nn.functional.normalize(vectors, dim=1)
    sims = unit @ unit.T
    sims.fill_diagonal_(-float("inf"))
    return float((labels[sims.argmax(1).numpy()] == labels).mean())


def contextual_neighbours(
    model: BiLM,
    queries: Sequence[Sequence[str]],
    pool: Sequence[Sequence[str]],
    word: str,
    k: int = 3,
    layer: int = 2,
) -> pd.DataFrame:
    """For each query sentence, the ``k`` occurrences of ``word`` in ``pool`` whose biLM vectors are
    closest."""
    occurrences = [(s, i) for s in pool for i, w in enumerate(s) if w.lower() == word]
    pool_vectors = torch.stack(
        [
            f[layer, i]
            for f, (_, i) in zip(layer_features(model, [s for s, _ in occurrences]), occurrences)
        ]
    )
    pool_unit = torch.nn.functional.normalize(pool_vectors, dim=1)
    rows = {}
    for query, feats in zip(queries, layer_features(model, queries)):
        position = [w.lower() for w in query].index(word)
        sims = pool_unit @ torch.nn.functional.normalize(feats[layer, position], dim=0)
        best = torch.topk(sims, k)
        rows[" ".join(query)] = [
            " ".join(_window(occurrences[i][0], occurrences[i][1])) + f"  ({s:.2f})"
            for s, i in zip(best.values.tolist(), best.indices.tolist())
        ]
    return pd.DataFrame(rows).T.rename(columns=lambda c: f"neighbour {c + 1}")


def _window(sentence: Sequence[str], i: int, width: int = 4) -> list[str]:
    return [*sentence[max(0, i - width) : i], f"[{sentence[i]}]", *sentence[i + 1 : i + 1 + width]]


def sentiment_data(cfg: ElmoChapterConfig, data_dir=None) -> ProbeTask:
    """SST-2: ``cfg.sst_train`` random training sentences (seeded); the validation set as test."""
    sst = data.load_sst2(data_dir=data_dir)
    rows = sorted(split_heldout(list(range(len(sst["train"]))), cfg.sst_train)[1])
    train, dev = sst["train"].select(rows), sst["validation"]
    return ProbeTask(
        "SST-2",
        [s.split() for s in train["sentence"]],
        [s.split() for s in dev["sentence"]],
        torch.tensor(train["label"]),
        torch.tensor(dev["label"]),
        token_level=False,
    )


# --------------------------------------------------------------------------------------------
# GPT-1 style: fine-tune the language model itself


class LMClassifier(nn.Module):
    """The biLM's forward direction with a linear head on the mean of its top-layer states."""

    def __init__(self, bilm: BiLM, n_classes: int) -> None:
        super().__init__()
        self.bilm = bilm
        self.head = nn.Linear(bilm.cfg.dim, n_classes)

    def forward(self, chars: torch.Tensor, lengths: torch.Tensor):
        x = self.bilm.encoder(chars)
        states = self.bilm.run_lstms(self.bilm.forward_lstms, x, lengths)[-1]
        mask = (torch.arange(chars.shape[1])[None, :] < lengths[:, None]).float()[..., None]
        return self.head((states * mask).sum(1) / mask.sum(1)), states


def finetune_lm_classifier(
    bilm: BiLM, itos: list[str], train, test, lam: float, cfg: ElmoChapterConfig, seed: int
) -> float:
    """Fine-tune a copy of the forward LM + head on ``train`` with ``L_task + λ L_LM``; test
    accuracy."""
    torch.manual_seed(seed)
    model = LMClassifier(copy.deepcopy(bilm), 2).train()
    stoi = {w: i for i, w in enumerate(itos)}
    opt = adamw(model.parameters(), lr=cfg.gpt_lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    sentences, labels = [s.split() for s in train["sentence"]], torch.tensor(train["label"])
    for _ in range(cfg.gpt_steps):
        idx = torch.randint(len(sentences), (cfg.gpt_batch,), generator=gen).tolist()
        chars, words, lengths = make_batch([sentences[i] for i in idx], stoi, bilm.cfg.max_chars)
        logits, states = model(chars, lengths)
        loss = F.cross_entropy(logits, labels[idx])
        if lam > 0:
            mask = torch.arange(words.shape[1] - 1)[None, :] < (lengths[:, None] - 1)
            loss = loss + lam * model.bilm.softmax(states[:, :-1][mask], words[:, 1:][mask]).loss
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
        opt.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for s in range(0, len(test["sentence"]), 128):
            group = [t.split() for t in test["sentence"][s : s + 128]]
            chars, _, lengths = make_batch(group, None, bilm.cfg.max_chars)
            correct += (
                (model(chars, lengths)[0].argmax(-1) == torch.tensor(test["label"][s : s + 128]))
                .sum()
                .item()
            )
    return correct / len(test["sentence"])
