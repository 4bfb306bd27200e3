"""Chapter 3: pretraining the small ELMo, what its layers know, and using them downstream.

* :class:`ElmoChapterConfig` / :data:`CONFIGS`: the chapter's sizes per profile;
* :func:`pretrain_bilm` trains :class:`~tlcourse.elmo.BiLM` on the cased, tokenised Gutenberg +
  WikiText-2 text plus ``corpus_words`` of the pretraining corpus (none in ``cpu``, all in ``gpu``;
  :func:`tlcourse.text.lm_sentences`; cached in the artefact cache by its config);
* words in context: occurrences of words that UD English-EWT's gold annotation tags both as nouns
  and as verbs (:func:`ambiguous_words`, :func:`noun_verb_occurrences`), a nearest-neighbour
  agreement score (a static vector can only reach the majority tag), and each query's closest
  occurrences in the corpus;
* :func:`few_label_tagging`: UPOS on EWT with 50-1,000 labelled sentences, scored on words with and
  without a static vector: ELMo's *feature-based* transfer (:func:`tlcourse.probes.fit_head`, a
  ScalarMix and a small MLP on the frozen layers, alone or concatenated with static vectors);
* :func:`finetune_lm_classifier` is the other road: fine-tune the forward LM itself with a head on
  its mean state (ULMFiT-style), with GPT-1's auxiliary loss ``L = L_task + λ L_LM`` (Radford et
  al. 2018, eq. 5).
"""

from __future__ import annotations

import copy
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..config import Profiles
from .. import hub, probes
from ..elmo import BiLM, BiLMConfig, layer_features, make_batch
from ..probes import HeadConfig, ProbeTask
from ..text import BOS, EOS, UNK
from ..train import adamw, progress_bar, seeded


@dataclass(frozen=True)
class ElmoChapterConfig:
    """Sizes of chapter 3 for one profile."""

    bilm: BiLMConfig = field(default_factory=BiLMConfig)
    # words sampled from the larger pretraining corpus on top of Gutenberg + WikiText-2 (None: all
    # 20.1 M). 0 in cpu: 600 steps do not finish one pass over the small corpus, and 2 M more words
    # moved the tagging gains by less than their noise (+0.051/+0.070/+0.090 against
    # +0.059/+0.074/+0.092 at 50/200/1,000 sentences, SE <= 0.007).
    corpus_words: int | None = 0
    min_count: int = 3  # output vocabulary of the LM (cased words)
    max_len: int = 30  # tokens per training sentence
    heldout: int = 1000  # sentences held out for perplexity
    pretrain_steps: int = 600
    pretrain_batch: int = 64
    pretrain_lr: float = 2e-3
    context_words: int = 12  # EWT words tagged both NOUN and VERB, for the words-in-context test
    context_min: int = 15  # ... each tag at least this often in EWT train + dev
    upos_pool: int = 1000  # EWT training sentences the label budgets are drawn from (test: dev)
    upos_budgets: tuple[int, ...] = (50, 200, 1000)  # labelled sentences
    upos_seeds: int = 3
    # ScalarMix + MLP on the frozen features
    head: HeadConfig = field(default_factory=lambda: HeadConfig(steps=500, batch=256))
    gpt_lambdas: tuple[float, ...] = (0.0, 0.5)
    gpt_seeds: int = 3
    gpt_train: int = 2000
    gpt_steps: int = 100
    gpt_batch: int = 32
    gpt_lr: float = 1e-3


def smoke(cfg: ElmoChapterConfig) -> ElmoChapterConfig:
    """``cfg`` shrunk for a smoke run (``TLCOURSE_SMOKE=1``): a few steps and rows, the same
    switches and code paths."""
    return replace(
        cfg,
        corpus_words=0 if cfg.corpus_words == 0 else 20_000,
        heldout=100,
        pretrain_steps=5,
        upos_pool=300,
        upos_budgets=(50, 300) if cfg.upos_budgets[-1] == cfg.upos_pool else (50, 200),
        upos_seeds=2,
        head=replace(cfg.head, steps=5),
        gpt_seeds=2,
        gpt_train=200,
        gpt_steps=5,
    )


CONFIGS = Profiles(
    {
        "cpu": ElmoChapterConfig(),
        "gpu": ElmoChapterConfig(
            corpus_words=None,
            pretrain_steps=3000,
            upos_pool=12544,
            upos_budgets=(50, 200, 1000, 12544),
            upos_seeds=5,
            gpt_seeds=5,
            gpt_steps=300,
        ),
    },
    smoke=smoke,
)


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
        "corpus": "gutenberg+wikitext2-valid-test+pretrain_corpus",
        "sentences": len(train),
        "vocab": len(itos),
        **{
            k: v
            for k, v in asdict(cfg).items()
            if k.startswith(("bilm", "pretrain", "max_len", "min_count", "corpus"))
        },
    }

    def build() -> BiLM:
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

    with seeded(0):  # the init and the training's draws, as one stream
        model, meta = hub.cached_module("ch03-bilm", key, build, fit, verbose=progress)
    return model.eval(), meta


# --------------------------------------------------------------------------------------------
# Words in context, and the sentence-level task


def ambiguous_words(ud, n: int, min_each: int) -> list[str]:
    """The ``n`` lower-cased words tagged both NOUN and VERB at least ``min_each`` times in the
    gold UPOS of ``ud`` (a ``DatasetDict`` of UD splits), most balanced first."""
    counts: dict[str, Counter] = {}
    for split in ud.values():
        for tokens, tags in zip(split["tokens"], split["upos"]):
            for w, t in zip(tokens, tags):
                if t in ("NOUN", "VERB"):
                    counts.setdefault(w.lower(), Counter())[t] += 1
    both = [w for w, c in counts.items() if min(c["NOUN"], c["VERB"]) >= min_each]
    return sorted(both, key=lambda w: (-min(counts[w]["NOUN"], counts[w]["VERB"]), w))[:n]


def noun_verb_occurrences(ud, word: str) -> list[tuple[list[str], int, str]]:
    """``(sentence, position, "NOUN" | "VERB")`` for each occurrence of ``word`` (any case) that the
    gold annotation of ``ud`` tags as a noun or a verb."""
    return [
        (list(tokens), i, tags[i])
        for split in ud.values()
        for tokens, tags in zip(split["tokens"], split["upos"])
        for i, w in enumerate(tokens)
        if w.lower() == word and tags[i] in ("NOUN", "VERB")
    ]


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


def known_words(sentences: Sequence[Sequence[str]], vocab: dict[str, int]) -> torch.Tensor:
    """One boolean per token: does the (lower-cased) word have a static vector?"""
    return torch.tensor([w.lower() in vocab for s in sentences for w in s])


def few_label_tagging(
    task: ProbeTask,
    elmo_features: tuple[torch.Tensor, torch.Tensor],
    static_features: tuple[torch.Tensor, torch.Tensor],
    known: torch.Tensor,
    cfg: ElmoChapterConfig,
    progress: bool = True,
) -> tuple[pd.DataFrame, dict[int, np.ndarray]]:
    """UPOS with few labels: for each budget and seed, ``budget`` training sentences drawn from
    ``task`` (seeded), four taggers, scored on the test tokens overall and on the words with and
    without a static vector (``known``).

    The taggers: the most frequent tag per word; an MLP on the static vectors; an MLP on a
    ScalarMix of the frozen biLM layers (ELMo alone); and ELMo's recipe, the static vector
    concatenated with the mix, ``[x_k; ELMo_k]`` (Peters et al. 2018, section 3.3). Returns one row
    per (budget, seed, tagger) and the learned layer weights of the recipe per budget (seed 0).
    """
    (x, x_test), (s, s_test) = elmo_features, static_features
    lengths = torch.tensor([len(t) for t in task.sentences])
    sentence_of = torch.repeat_interleave(torch.arange(len(lengths)), lengths)
    words = [w.lower() for t in task.sentences for w in t]
    test_words = [w.lower() for t in task.test_sentences for w in t]
    rows, weights = [], {}
    runs = [(b, seed) for b in cfg.upos_budgets for seed in range(cfg.upos_seeds)]
    for budget, seed in progress_bar(runs, progress=progress, desc="UPOS taggers", leave=False):
        picked = np.random.default_rng(seed).permutation(len(lengths))[:budget]
        r = torch.isin(sentence_of, torch.from_numpy(picked))
        y = task.y[r]
        train_words = [w for w, keep in zip(words, r.tolist()) if keep]
        preds = {"most frequent tag": probes.most_frequent_tag(train_words, y, test_words)}
        predict, _ = probes.fit_head(s[:, r], y, cfg.head, layer=0, seed=seed)
        preds["static (SGNS)"] = predict(s_test)
        predict, _ = probes.fit_head(x[:, r], y, cfg.head, seed=seed)
        preds["ELMo alone"] = predict(x_test)
        predict, w = probes.fit_head(x[:, r], y, cfg.head, seed=seed, extra=s[0, r])
        preds["static + ELMo"] = predict(x_test, s_test[0])
        if seed == 0:
            weights[budget] = w
        for name, p in preds.items():
            correct = (p == task.y_test).float()
            rows.append(
                {
                    "budget": budget,
                    "seed": seed,
                    "tagger": name,
                    "all words": correct.mean().item(),
                    "with a static vector": correct[known].mean().item(),
                    "without one": correct[~known].mean().item(),
                }
            )
    return pd.DataFrame(rows), weights


# --------------------------------------------------------------------------------------------
# Fine-tune the language model itself (ULMFiT-style), with GPT-1's auxiliary LM loss


class LMClassifier(nn.Module):
    """The biLM's forward direction with a linear head on the mean of its top-layer states.

    A recurrent LM fine-tuned as a classifier is ULMFiT's set-up (Howard & Ruder 2018, who pool the
    last, max and mean states); GPT-1 instead fine-tunes a transformer decoder and classifies from
    the last token."""

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
    with seeded(seed):  # the head's init and the dropout of training
        model = LMClassifier(copy.deepcopy(bilm), 2).train()
        stoi = {w: i for i, w in enumerate(itos)}
        opt = adamw(model.parameters(), lr=cfg.gpt_lr, weight_decay=0.0)
        gen = torch.Generator().manual_seed(seed)
        sentences, labels = [s.split() for s in train["sentence"]], torch.tensor(train["label"])
        for _ in range(cfg.gpt_steps):
            idx = torch.randint(len(sentences), (cfg.gpt_batch,), generator=gen).tolist()
            chars, words, lengths = make_batch(
                [sentences[i] for i in idx], stoi, bilm.cfg.max_chars
            )
            logits, states = model(chars, lengths)
            loss = F.cross_entropy(logits, labels[idx])
            if lam > 0:
                mask = torch.arange(words.shape[1] - 1)[None, :] < (lengths[:, None] - 1)
                loss = (
                    loss + lam * model.bilm.softmax(states[:, :-1][mask], words[:, 1:][mask]).loss
                )
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
