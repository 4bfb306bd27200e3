"""Chapter 4: the experiments around BERT — corpus, cloze probes, the transfer table, RTE,
BERTology.

* the pretraining text is :func:`tlcourse.text.corpus_texts` (chapter 3's Gutenberg + WikiText-2
  lines);
* :func:`cloze_table` is a small LAMA-style probe (Petroni et al. 2019): the rank and
  log-probability of the right filler for a ``[MASK]``, next to the rank a context-free unigram
  model gives it;
* :func:`transfer_runs` fine-tunes every starting point at every label budget and seed (the
  chapter's transfer table: random init, corpus pretraining, self-pretraining (Krishna et al. 2023),
  MiniLM);
* :func:`attention_maps` and :func:`layer_probe` look inside MiniLM (Clark et al. 2019; Tenney
  et al. 2019; the probe is :func:`tlcourse.probes.train_head` with a linear head).
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Sequence

import pandas as pd
import torch

from .. import data, hub, probes
from ..finetune import FinetuneConfig, encode, finetune_classifier
from ..mlm import TinyBertConfig
from ..train import progress_bar


@dataclass(frozen=True)
class BertChapterConfig:
    """Sizes of chapter 4 for one profile."""

    vocab_size: int = 8000
    bert: TinyBertConfig = field(
        default_factory=lambda: TinyBertConfig(max_len=64, batch=32, steps=700, lr=2e-3)
    )
    self_steps: int = 300  # self-pretraining on the SST-2 training sentences
    budgets: tuple[int, ...] = (500, 2000)  # SST-2 labels (validation: all 872 sentences)
    seeds: int = 2
    tiny_finetune: FinetuneConfig = field(
        default_factory=lambda: FinetuneConfig(lr=3e-4, max_len=64)
    )
    minilm_finetune: FinetuneConfig = field(
        default_factory=lambda: FinetuneConfig(lr=1e-4, min_steps=40, max_steps=40)
    )
    rte_train: int = 2490  # all of RTE's training pairs (validation: 277)
    rte_seeds: int = 1
    rte_finetune: FinetuneConfig = field(
        default_factory=lambda: FinetuneConfig(
            lr=1e-4, batch=16, max_len=128, min_steps=40, max_steps=40
        )
    )
    probe_train: int = 2000  # EWT sentences for the per-layer UPOS probe (test: 2,001 dev)
    probe_steps: int = 600

    @property
    def self_bert(self) -> TinyBertConfig:
        """The tiny BERT's config for self-pretraining (same model, ``self_steps`` steps)."""
        return dataclasses.replace(self.bert, steps=self.self_steps)


CONFIGS = {
    "cpu": BertChapterConfig(),
    "gpu": BertChapterConfig(
        bert=TinyBertConfig(max_len=64, batch=128, steps=20_000, lr=1e-3),
        self_steps=5000,
        budgets=(500, 2000, 8000),
        seeds=5,
        minilm_finetune=FinetuneConfig(lr=5e-5, epochs=2.0, max_steps=500),
        rte_seeds=3,
        rte_finetune=FinetuneConfig(lr=3e-5, epochs=3.0, batch=16, max_len=128, max_steps=500),
        probe_train=12544,
        probe_steps=1500,
    ),
}


# --------------------------------------------------------------------------------------------
# Cloze probes


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
    """Fine-tune each start at each of its budgets for ``seeds`` seeds; one row per run."""
    jobs = [
        (name, b, s) for name, start in starts.items() for b in start.budgets for s in range(seeds)
    ]
    encoded_test = {}
    rows = []
    for name, budget, seed in progress_bar(jobs, progress=progress, desc="fine-tuning runs"):
        start = starts[name]
        key = id(start.tokenizer)
        if key not in encoded_test:
            encoded_test[key] = encode(start.tokenizer, test, columns, start.finetune.max_len)
        subset = encode(
            start.tokenizer,
            data.budget_subset(train, budget, seed),
            columns,
            start.finetune.max_len,
        )
        torch.manual_seed(seed)
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
    """UPOS accuracy of a *linear* probe on each layer of a frozen encoder (UD English-EWT dev).

    Tenney et al. (2019): a probe that is too strong learns the task itself; a linear one measures
    what a layer makes linearly accessible.
    """
    head = probes.HeadConfig(hidden=0, steps=cfg.probe_steps)
    task = probes.tagging_data(cfg.probe_train, data_dir)
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
