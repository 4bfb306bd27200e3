"""Chapter 4: the experiments around BERT — corpus, cloze probes, part-of-speech tagging from a
tiny BERT, the transfer table, RTE, BERTology.

* the pretraining text is :func:`tlcourse.text.corpus_texts` (chapter 3's Gutenberg + WikiText-2
  lines); :func:`tiny_bert` gives the chapter's WordPiece tokenizer and pretrained tiny BERT from
  the artefact cache (trained when missing);
* :func:`cloze_table` is a small LAMA-style probe (Petroni et al. 2019): the rank and
  log-probability of the right filler for a ``[MASK]``, next to the rank a context-free unigram
  model gives it;
* :func:`tagging_runs` fine-tunes a ``BertForTokenClassification`` on UPOS tags (UD English-EWT)
  from each starting point at each budget of labelled sentences and seed, with the label on the
  first WordPiece of each word (Devlin et al. 2019, section 5.3; the method is
  :mod:`tlcourse.tagging`); :func:`tlcourse.viz.paired_effect` compares two starting points seed
  by seed;
* :func:`transfer_runs` fine-tunes every starting point at every label budget and seed (the
  chapter's SST-2 table: random init, corpus pretraining, MiniLM read out by mean pooling,
  :class:`tlcourse.finetune.MeanPoolClassifier`);
* :func:`attention_maps` and :func:`layer_probe` look inside MiniLM (Clark et al. 2019; Tenney
  et al. 2019; the probe is :func:`tlcourse.probes.train_head` with a linear head).
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from ..config import Profiles
from .. import data, hub, mlm, probes, text, wordpiece
from ..finetune import FinetuneConfig, encode, finetune_classifier
from ..mlm import TinyBertConfig
from ..tagging import encode_tags, tag_accuracy, train_tagger
from ..train import progress_bar, seeded

# Methods the book calls as ``ch.<name>``; they live in their method modules.
from ..finetune import minilm_classifier  # noqa: F401
from ..tagging import tagger  # noqa: F401
from ..viz import paired_effect  # noqa: F401


@dataclass(frozen=True)
class BertChapterConfig:
    """Sizes of chapter 4 for one profile."""

    # words sampled from the larger pretraining corpus on top of Gutenberg + WikiText-2 (None: all
    # 20.1 M). 0 in cpu: 700 steps do not finish one pass over the small corpus; with 2 M more words
    # the SST-2 gain of pretraining at 500 labels fell from +0.059 (SE 0.017) to +0.036 (SE 0.024)
    # and the book probes' answers stop being single pieces of an 8,000-piece vocabulary.
    corpus_words: int | None = 0
    vocab_size: int = 8000
    bert: TinyBertConfig = field(
        default_factory=lambda: TinyBertConfig(max_len=64, batch=32, steps=700, lr=2e-3)
    )
    # UPOS tagging (UD English-EWT) from the tiny BERT: training sentences per run, seeds, the
    # number of dev sentences scored (2,001 = all) and the fine-tuning recipe (steps(n) as in
    # FinetuneConfig: epochs over the n sentences, clipped to [min_steps, max_steps])
    tag_budgets: tuple[int, ...] = (50, 200, 1000)
    tag_seeds: int = 3
    tag_test: int = 1000
    tagger: FinetuneConfig = field(
        default_factory=lambda: FinetuneConfig(
            epochs=3.0, min_steps=80, max_steps=250, batch=16, lr=2e-3, max_len=64
        )
    )
    budgets: tuple[int, ...] = (500,)  # SST-2 labels (validation: all 872 sentences)
    seeds: int = 3
    tiny_finetune: FinetuneConfig = field(
        default_factory=lambda: FinetuneConfig(lr=3e-4, max_len=64)
    )
    # MiniLM read out by mean pooling; its new head trains at 10x the encoder's learning rate
    minilm_finetune: FinetuneConfig = field(
        default_factory=lambda: FinetuneConfig(
            lr=1e-4, head_lr_scale=10.0, epochs=1.0, min_steps=1, max_steps=1000
        )
    )
    rte_train: int = 128  # RTE training pairs per run (of 2,490; validation: all 277)
    rte_seeds: int = 3
    rte_finetune: FinetuneConfig = field(
        default_factory=lambda: FinetuneConfig(
            lr=1e-4,
            head_lr_scale=10.0,
            epochs=1.0,
            batch=8,
            max_len=128,
            min_steps=1,
            max_steps=1000,
        )
    )
    probe_train: int = 400  # EWT sentences for the per-layer UPOS probe
    probe_test: int = 400  # EWT dev sentences it is scored on (2,001 = all)
    probe_steps: int = 300


def smoke(cfg: BertChapterConfig) -> BertChapterConfig:
    """``cfg`` shrunk for a smoke run (``TLCOURSE_SMOKE=1``): a few steps and rows, the same
    switches and code paths."""
    quick = dict(min_steps=1, max_steps=4)
    return replace(
        cfg,
        corpus_words=0 if cfg.corpus_words == 0 else 20_000,
        bert=replace(cfg.bert, steps=5, warmup=1),
        tag_budgets=cfg.tag_budgets[:2],
        tag_seeds=2,
        tag_test=100,
        tagger=replace(cfg.tagger, **quick),
        budgets=tuple(b // 10 for b in cfg.budgets[:2]),
        seeds=2,
        tiny_finetune=replace(cfg.tiny_finetune, **quick),
        minilm_finetune=replace(cfg.minilm_finetune, **quick),
        rte_train=64,
        rte_seeds=2,
        rte_finetune=replace(cfg.rte_finetune, **quick),
        probe_train=100,
        probe_test=100,
        probe_steps=5,
    )


CONFIGS = Profiles(
    {
        "cpu": BertChapterConfig(),
        "gpu": BertChapterConfig(
            corpus_words=None,
            vocab_size=30_522,  # BERT's size: 8,000 pieces of 22 M words split the probes' names
            bert=TinyBertConfig(max_len=64, batch=128, steps=20_000, lr=1e-3),
            tag_budgets=(50, 200, 1000, 4000),
            tag_seeds=5,
            tag_test=2001,
            tagger=FinetuneConfig(
                epochs=4.0, min_steps=300, max_steps=1000, batch=32, lr=1e-3, max_len=64
            ),
            budgets=(500, 2000, 8000),
            seeds=5,
            minilm_finetune=FinetuneConfig(
                lr=5e-5, head_lr_scale=10.0, epochs=2.0, min_steps=50, max_steps=500
            ),
            rte_train=2490,
            rte_finetune=FinetuneConfig(
                lr=3e-5,
                head_lr_scale=10.0,
                epochs=3.0,
                batch=16,
                max_len=128,
                min_steps=1,
                max_steps=1000,
            ),
            probe_train=12544,
            probe_test=2001,
            probe_steps=1500,
        ),
    },
    smoke=smoke,
)


# --------------------------------------------------------------------------------------------
# The chapter's tiny BERT


def tiny_bert(cfg: BertChapterConfig, device="cpu", progress: bool = True):
    """The chapter's WordPiece tokenizer and pretrained tiny BERT (a ``BertForMaskedLM``).

    The same calls as the chapter's cells, so they come from the artefact cache once the chapter
    has run (and are trained and cached when they are missing).
    """
    texts = text.corpus_texts(extra_words=cfg.corpus_words)
    tokenizer = wordpiece.cached_wordpiece(
        "ch04-wordpiece", texts, cfg.vocab_size, verbose=progress
    )
    bert, _ = mlm.pretrain_mlm(
        "ch04-bert-corpus", tokenizer, texts, cfg.bert, device=device, progress=progress
    )
    return tokenizer, bert


# --------------------------------------------------------------------------------------------
# Cloze probes


def single_piece_probes(
    tokenizer, probes: Sequence[tuple[str, str]]
) -> tuple[list[tuple[str, str]], list[str]]:
    """``(probes whose answer is one WordPiece, the other answers)``: :func:`cloze_table` ranks a
    single piece, and a vocabulary trained on other text (the ``gpu`` profile's larger corpus) may
    split a rare name."""
    kept, dropped = [], []
    for sentence, answer in probes:
        single = len(tokenizer(answer, add_special_tokens=False)["input_ids"]) == 1
        (kept if single else dropped).append((sentence, answer) if single else answer)
    return kept, dropped


@torch.no_grad()
def cloze_table(
    models: dict[str, torch.nn.Module],
    tokenizer,
    probes: Sequence[tuple[str, str]],
    unigram: Counter | None = None,
    k: int = 3,
) -> pd.DataFrame:
    """For each ``(sentence with one [MASK], answer)``: each model's top-``k`` and the answer's rank
    and log p.

    ``unigram`` (WordPiece counts of the corpus) adds the answer's rank by frequency alone: a model
    that ranks the answer higher than that has used the context.
    """
    answer_ids = []
    for sentence, answer in probes:
        ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise ValueError(
                f"cloze_table: the answer {answer!r} is {len(ids)} WordPieces; "
                "a probe needs a single-piece answer."
            )
        answer_ids.append(ids[0])
    rows = []
    for (sentence, answer), answer_id in zip(probes, answer_ids):
        enc = tokenizer(sentence, return_tensors="pt")
        position = (enc["input_ids"][0] == tokenizer.mask_token_id).nonzero()
        if len(position) != 1:
            raise ValueError(
                f"cloze_table: expected exactly one [MASK] in {sentence!r}, found {len(position)}."
            )
        row = {"sentence": sentence, "answer": answer}
        if unigram is not None:
            row["unigram rank"] = 1 + sum(c > unigram[answer_id] for c in unigram.values())
        for name, model in models.items():
            logp = model.eval()(**enc).logits[0, position[0, 0]].log_softmax(-1)
            top = torch.topk(logp, k).indices.tolist()
            row[f"{name}: top {k}"] = " ".join(tokenizer.convert_ids_to_tokens(top))
            row[f"{name}: rank"] = 1 + int((logp > logp[answer_id]).sum())
            row[f"{name}: log p"] = round(float(logp[answer_id]), 2)
        rows.append(row)
    return pd.DataFrame(rows).set_index("sentence")


def piece_counts(tokenizer, texts: Sequence[str]) -> Counter:
    """WordPiece frequencies of ``texts`` (for the unigram baseline of :func:`cloze_table`)."""
    counts = Counter()
    for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
        counts.update(ids)
    return counts


# --------------------------------------------------------------------------------------------
# Part-of-speech tagging from the tiny BERT


def tagging_runs(
    starts: dict[str, Callable[[], torch.nn.Module]],
    tokenizer,
    train,
    test,
    cfg: BertChapterConfig,
    budgets: Sequence[int] | None = None,
    seeds: int | None = None,
    device="cpu",
    progress: bool = True,
) -> pd.DataFrame:
    """Train a UPOS tagger from each start (a function that builds the model) at each budget of
    training sentences and seed; one row per run, scored on the first ``cfg.tag_test`` sentences of
    ``test``.

    The sentences of seed ``s`` are the first ``budget`` of one random order drawn with seed ``s``
    (:func:`tlcourse.data.label_budget_indices` with a single class): nested across budgets and the
    same for every start. The seed also fixes the model's random init and the batch order.
    """
    budgets = tuple(cfg.tag_budgets if budgets is None else budgets)
    seeds = cfg.tag_seeds if seeds is None else seeds
    max_len = cfg.tagger.max_len
    test_rows = encode_tags(tokenizer, test.select(range(min(cfg.tag_test, len(test)))), max_len)
    jobs = [(b, s, name) for b in budgets for s in range(seeds) for name in starts]
    rows, encoded = [], {}
    for budget, seed, name in progress_bar(jobs, progress=progress, desc="tagging runs"):
        if (budget, seed) not in encoded:
            order = data.label_budget_indices(np.zeros(len(train)), [budget], seed)[budget]
            encoded = {(budget, seed): encode_tags(tokenizer, train.select(order), max_len)}
        with seeded(seed):  # the model's init and the dropout of training
            model = starts[name]()
            began = time.perf_counter()
            history = train_tagger(model, encoded[budget, seed], cfg.tagger, seed, device)
        rows.append(
            {
                "start": name,
                "sentences": budget,
                "seed": seed,
                "accuracy": tag_accuracy(model, test_rows, device=device),
                "steps": len(history.loss),
                "seconds": time.perf_counter() - began,
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# The transfer table


@dataclass
class Start:
    """A starting point for fine-tuning: how to build the classifier, its tokenizer and fine-tuning
    config."""

    build: Callable[[], torch.nn.Module]
    tokenizer: object
    finetune: FinetuneConfig
    budgets: Sequence[int]


def transfer_runs(
    starts: dict[str, Start],
    train,
    test,
    seeds: int,
    columns=("sentence",),
    device="cpu",
    progress: bool = True,
) -> pd.DataFrame:
    """Fine-tune each start at each of its budgets for ``seeds`` seeds; one row per run.

    Two ``columns`` are a sentence pair, one input ``[CLS] A [SEP] B [SEP]``; when it is too long,
    only the first text is shortened (``truncation="only_first"``), so the second (a hypothesis)
    is always read whole.
    """
    truncation = "only_first" if len(columns) == 2 else True
    jobs = [
        (name, b, s) for name, start in starts.items() for b in start.budgets for s in range(seeds)
    ]
    encoded_test = {}
    rows = []
    for name, budget, seed in progress_bar(jobs, progress=progress, desc="fine-tuning runs"):
        start = starts[name]
        key = id(start.tokenizer)
        if key not in encoded_test:
            encoded_test[key] = encode(
                start.tokenizer, test, columns, start.finetune.max_len, truncation
            )
        subset = encode(
            start.tokenizer,
            data.budget_subset(train, budget, seed),
            columns,
            start.finetune.max_len,
            truncation,
        )
        with seeded(seed):  # the head's init and the dropout of training
            model = start.build()
            began = time.perf_counter()
            accuracy, losses = finetune_classifier(
                model, subset, encoded_test[key], start.finetune, seed, device
            )
        rows.append(
            {
                "start": name,
                "labels": budget,
                "seed": seed,
                "accuracy": accuracy,
                "steps": len(losses),
                "seconds": time.perf_counter() - began,
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# BERTology on MiniLM


@torch.no_grad()
def attention_maps(sentence: str, model_name: str = "minilm") -> tuple[list[str], torch.Tensor]:
    """The WordPieces of ``sentence`` and every head's attention, shape
    ``(layers, heads, n, n)``."""
    tokenizer = hub.load_tokenizer(model_name)
    # the fused "sdpa" kernel does not return attention weights; the eager implementation does
    model = hub.load_model(model_name, attn_implementation="eager").eval()
    enc = tokenizer(sentence, return_tensors="pt")
    attentions = model(**enc, output_attentions=True).attentions
    return tokenizer.convert_ids_to_tokens(enc["input_ids"][0]), torch.stack(attentions)[:, 0]


def layer_probe(
    cfg: BertChapterConfig, model_name: str = "minilm", device="cpu", data_dir=None
) -> pd.Series:
    """UPOS accuracy of a *linear* probe on each layer of a frozen encoder, trained on the first
    ``cfg.probe_train`` UD English-EWT training sentences and scored on the first
    ``cfg.probe_test`` dev sentences.

    A probe that is too strong can learn the task itself; Hewitt & Liang (2019) find linear probes
    more *selective* than MLPs (about as accurate on the task, less so on a control task), so a
    linear one measures what a layer makes linearly accessible.
    """
    head = probes.HeadConfig(hidden=0, steps=cfg.probe_steps)
    task = probes.tagging_data(cfg.probe_train, data_dir)
    if cfg.probe_test < len(task.test_sentences):
        kept = task.test_sentences[: cfg.probe_test]
        n_words = sum(len(sentence) for sentence in kept)
        task = dataclasses.replace(task, test_sentences=kept, y_test=task.y_test[:n_words])
    x, x_test = task.transformer_features(model_name, device=device)
    names = ["embeddings", *(f"layer {j}" for j in range(1, x.shape[0]))]
    return pd.Series(
        {
            name: probes.train_head(x, task.y, x_test, task.y_test, head, layer=j)[0]
            for j, name in enumerate(names)
        },
        name="UPOS accuracy",
    )


def load_tasks(data_dir=None):
    """SST-2 and RTE as ``DatasetDict`` s (validation sets as the test sets)."""
    return data.load_sst2(data_dir=data_dir), data.load_rte(data_dir=data_dir)
