"""Chapter 3: pretraining the small ELMo, extracting its layers, and using them downstream.

* :func:`pretrain_bilm` trains :class:`~tlcourse.elmo.BiLM` on the cased, tokenised Gutenberg +
  WikiText-2 text (cached in the artefact cache by its config);
* :func:`layer_features` runs the frozen biLM and returns each token's ``L + 1`` layers;
* :func:`train_head` fits a per-task :class:`~tlcourse.elmo.ScalarMix` (or one fixed layer) and a
  small MLP on precomputed features: ELMo's *feature-based* transfer;
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
import torch
import torch.nn.functional as F
from torch import nn

from . import data, hub
from .elmo import BiLM, BiLMConfig, ScalarMix, char_ids
from .train import progress_bar

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
_WIKITEXT_MARKS = {"@-@": "-", "@,@": ",", "@.@": "."}


@dataclass(frozen=True)
class ElmoChapterConfig:
    """Sizes of chapter 3 for one profile."""

    bilm: BiLMConfig = field(default_factory=BiLMConfig)
    min_count: int = 3            # output vocabulary of the LM (cased words)
    max_len: int = 30             # tokens per training sentence
    heldout: int = 1000           # sentences held out for perplexity
    pretrain_steps: int = 600
    pretrain_batch: int = 64
    pretrain_lr: float = 2e-3
    upos_train: int = 3000        # UD English-EWT training sentences for the tagger (dev: all 2,001)
    sst_train: int = 5000         # SST-2 training sentences (validation: all 872)
    head_hidden: int = 128
    head_steps: int = 1500
    head_lr: float = 3e-3
    head_batch: int = 512
    gpt_lambdas: tuple[float, ...] = (0.0, 0.5)
    gpt_seeds: int = 3
    gpt_train: int = 2000
    gpt_steps: int = 100
    gpt_batch: int = 32
    gpt_lr: float = 1e-3


CONFIGS = {
    "cpu": ElmoChapterConfig(),
    "gpu": ElmoChapterConfig(pretrain_steps=3000, upos_train=12544, sst_train=20000, gpt_seeds=5, gpt_steps=300),
}


# --------------------------------------------------------------------------------------------
# Corpus, vocabulary, batches


def lm_sentences(max_len: int, data_dir=None) -> list[list[str]]:
    """Cased, tokenised sentences of the Gutenberg selection and WikiText-2 valid/test, cut to ``max_len``."""
    wiki = data.load_text("wikitext2", data_dir=data_dir)
    lines = [*data.load_text("gutenberg", data_dir=data_dir)["text"], *wiki["validation"]["text"], *wiki["test"]["text"]]
    out = []
    for line in lines:
        tokens = [_WIKITEXT_MARKS.get(t, t) for t in line.split()]
        if len(tokens) >= 2:
            out.append(tokens[:max_len])
    return out


def word_vocab(sentences: Sequence[Sequence[str]], min_count: int) -> list[str]:
    """``<unk>``, ``<s>``, ``</s>`` then the words seen ``min_count`` times, most frequent first
    (the adaptive softmax wants frequent words at small ids)."""
    counts = Counter(w for s in sentences for w in s)
    words = sorted((w for w, c in counts.items() if c >= min_count and w != UNK), key=lambda w: (-counts[w], w))
    return [UNK, BOS, EOS, *words]


def make_batch(sentences: Sequence[Sequence[str]], stoi: dict[str, int] | None, max_chars: int):
    """``(chars, word ids or None, lengths)`` for sentences wrapped in ``<s> ... </s>``."""
    wrapped = [[BOS, *s, EOS] for s in sentences]
    lengths = torch.tensor([len(w) for w in wrapped])
    words = None
    if stoi is not None:
        words = torch.zeros(len(wrapped), int(lengths.max()), dtype=torch.long)
        for i, w in enumerate(wrapped):
            words[i, : len(w)] = torch.tensor([stoi.get(x, 0) for x in w])
    return char_ids(wrapped, max_chars), words, lengths


def split_heldout(sentences: list, n: int, seed: int = 0) -> tuple[list, list]:
    order = np.random.default_rng(seed).permutation(len(sentences))
    return [sentences[i] for i in order[n:]], [sentences[i] for i in order[:n]]


# --------------------------------------------------------------------------------------------
# Pretraining and perplexity


@torch.no_grad()
def perplexity(model: BiLM, sentences: Sequence[Sequence[str]], stoi: dict[str, int], batch: int = 100) -> tuple[float, float]:
    """Forward and backward perplexity ``exp(mean NLL)`` over the predicted positions of ``sentences``."""
    was_training = model.training
    model.eval()
    totals, n = np.zeros(2), 0
    for s in range(0, len(sentences), batch):
        chars, words, lengths = make_batch(sentences[s:s + batch], stoi, model.cfg.max_chars)
        k = int((lengths - 1).sum())
        totals += np.array([loss.item() for loss in model.lm_losses(chars, words, lengths)]) * k
        n += k
    model.train(was_training)
    return math.exp(totals[0] / n), math.exp(totals[1] / n)


def unigram_perplexity(train: Sequence[Sequence[str]], heldout: Sequence[Sequence[str]], itos: list[str]) -> float:
    """The perplexity of predicting every held-out word from its training frequency alone (no context)."""
    stoi = {w: i for i, w in enumerate(itos)}
    counts = np.ones(len(itos))  # add-one, so no held-out word has probability 0
    for s in train:
        for w in [*s, EOS]:
            counts[stoi.get(w, 0)] += 1
    logp = np.log(counts / counts.sum())
    nll = [-logp[stoi.get(w, 0)] for s in heldout for w in [*s, EOS]]
    return float(np.exp(np.mean(nll)))


def pretrain_bilm(train: list, itos: list[str], cfg: ElmoChapterConfig, device="cpu", progress: bool = True) -> tuple[BiLM, dict]:
    """Train the biLM on length-bucketed batches for ``cfg.pretrain_steps`` steps (Adam, clipped), cached."""
    stoi = {w: i for i, w in enumerate(itos)}
    key = {"corpus": "gutenberg+wikitext2-valid-test", "sentences": len(train), "vocab": len(itos),
           **{k: v for k, v in asdict(cfg).items() if k.startswith(("bilm", "pretrain", "max_len", "min_count"))}}

    def build() -> BiLM:
        torch.manual_seed(0)
        return BiLM(len(itos), cfg.bilm)

    def fit(model: BiLM) -> dict:
        model.to(device).train()
        rng = np.random.default_rng(0)
        order = np.argsort([len(s) for s in train], kind="stable")
        batches = [order[i:i + cfg.pretrain_batch] for i in range(0, len(order), cfg.pretrain_batch)]
        rng.shuffle(batches)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.pretrain_lr)
        history, start = [], time.perf_counter()
        bar = progress_bar(range(cfg.pretrain_steps), progress=progress, desc="pretrain biLM", leave=False)
        for step in bar:
            chars, words, lengths = make_batch([train[i] for i in batches[step % len(batches)]], stoi, cfg.bilm.max_chars)
            fwd, bwd = model.lm_losses(chars.to(device), words.to(device), lengths)
            opt.zero_grad()
            (fwd + bwd).backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            history.append((fwd.item(), bwd.item()))
            bar.set_postfix(fwd=f"{fwd.item():.2f}", bwd=f"{bwd.item():.2f}")
        model.cpu().eval()
        return {"seconds": time.perf_counter() - start, "loss": history,
                "epochs": cfg.pretrain_steps * cfg.pretrain_batch / len(train)}

    model, meta = hub.cached_module("ch03-bilm", key, build, fit, verbose=progress)
    return model.eval(), meta


# --------------------------------------------------------------------------------------------
# Features and heads


@torch.no_grad()
def layer_features(model: BiLM, sentences: Sequence[Sequence[str]], batch: int = 128) -> list[torch.Tensor]:
    """For each sentence, its tokens' layers ``(L + 1, n_tokens, 2·dim)`` (boundary marks removed)."""
    model.eval()
    out = []
    for s in range(0, len(sentences), batch):
        group = sentences[s:s + batch]
        chars, _, lengths = make_batch(group, None, model.cfg.max_chars)
        layers = model.layers(chars, lengths)
        out += [layers[:, i, 1:1 + len(x)] for i, x in enumerate(group)]
    return out


class Standardize:
    """Per-layer, per-dimension standardisation fitted on the training features (shape (L, N, d))."""

    def __init__(self, x: torch.Tensor) -> None:
        self.mean, self.std = x.mean(1, keepdim=True), x.std(1, keepdim=True) + 1e-6

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def train_head(x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor, cfg: ElmoChapterConfig,
               layer: int | None = None, seed: int = 0) -> tuple[float, np.ndarray]:
    """Fit ``ScalarMix`` (or the single ``layer``) + an MLP on features ``x`` (L, N, d); test accuracy and ``s``.

    ``cfg.head_hidden = 0`` makes the head linear (a probe in the sense of Tenney et al. 2019).
    """
    torch.manual_seed(seed)
    mix = ScalarMix(x.shape[0])
    n_classes = int(y.max()) + 1
    if cfg.head_hidden == 0:  # a linear probe (chapter 4's per-layer probes)
        head = nn.Linear(x.shape[-1], n_classes)
    else:
        head = nn.Sequential(nn.Linear(x.shape[-1], cfg.head_hidden), nn.ReLU(), nn.Linear(cfg.head_hidden, n_classes))
    params = [*head.parameters(), *(mix.parameters() if layer is None else [])]
    opt = torch.optim.Adam(params, lr=cfg.head_lr)
    gen = torch.Generator().manual_seed(seed)

    def represent(feats: torch.Tensor) -> torch.Tensor:
        return mix(feats) if layer is None else feats[layer]

    for _ in range(cfg.head_steps):
        idx = torch.randint(x.shape[1], (cfg.head_batch,), generator=gen)
        loss = F.cross_entropy(head(represent(x[:, idx])), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        accuracy = (head(represent(x_test)).argmax(-1) == y_test).float().mean().item()
    return accuracy, mix.weights.detach().numpy()


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


def finetune_lm_classifier(bilm: BiLM, itos: list[str], train, test, lam: float, cfg: ElmoChapterConfig,
                           seed: int) -> float:
    """Fine-tune a copy of the forward LM + head on ``train`` with ``L_task + λ L_LM``; test accuracy."""
    torch.manual_seed(seed)
    model = LMClassifier(copy.deepcopy(bilm), 2).train()
    stoi = {w: i for i, w in enumerate(itos)}
    opt = torch.optim.Adam(model.parameters(), lr=cfg.gpt_lr)
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
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for s in range(0, len(test["sentence"]), 128):
            group = [t.split() for t in test["sentence"][s:s + 128]]
            chars, _, lengths = make_batch(group, None, bilm.cfg.max_chars)
            correct += (model(chars, lengths)[0].argmax(-1) == torch.tensor(test["label"][s:s + 128])).sum().item()
    return correct / len(test["sentence"])
