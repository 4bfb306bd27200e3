"""Chapter 4: token classification on a BERT body, labelled on the first WordPiece of each word.

Devlin et al. (2019), section 5.3 (the CoNLL-2003 NER experiments): a word split into several
WordPieces is labelled on its *first* piece only; the other pieces, ``[CLS]``, ``[SEP]`` and padding
carry no label and count neither in the loss nor in the accuracy. A linear layer on each piece's
final state predicts its tag. Chapter 4 uses it for UPOS tags (UD English-EWT, :func:`encode_tags`)
with a tiny BERT body (:func:`tagger`), trained by :func:`train_tagger` and scored by
:func:`tag_accuracy`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import data
from .finetune import FinetuneConfig, length_grouped_batches
from .mlm import TinyBertConfig
from .train import fit


def encode_tags(tokenizer, dataset, max_len: int) -> dict[str, torch.Tensor]:
    """UD sentences (columns ``tokens`` and ``upos``) as padded WordPiece rows for tagging.

    Each word's UPOS id (its index in :data:`tlcourse.data.UPOS_TAGS`) labels its *first*
    WordPiece; the other pieces, ``[CLS]``, ``[SEP]`` and padding get -100, which the loss and the
    accuracy skip (Devlin et al. 2019, section 5.3). Words cut off by ``max_len`` get no label.
    """
    tag = {t: i for i, t in enumerate(data.UPOS_TAGS)}
    enc = tokenizer(
        list(dataset["tokens"]),
        is_split_into_words=True,
        truncation=True,
        max_length=max_len,
        padding="max_length",
        return_tensors="pt",
    )
    labels = torch.full_like(enc["input_ids"], -100)
    for i, tags in enumerate(dataset["upos"]):
        previous = None
        for position, word in enumerate(enc.word_ids(i)):
            if word is not None and word != previous:
                labels[i, position] = tag[tags[word]]
            previous = word
    return {
        "input_ids": enc["input_ids"],
        "attention_mask": enc["attention_mask"],
        "labels": labels,
    }


def tagger(bert_cfg: TinyBertConfig, vocab_size: int, body=None):
    """A ``BertForTokenClassification`` of the tiny BERT's size over the 17 UPOS tags.

    With ``body`` (a pretrained ``BertForMaskedLM`` of that size) the encoder starts from its
    weights; without, from random init. The linear layer on top (``classifier``) is always new.
    """
    from transformers import BertForTokenClassification

    config = bert_cfg.bert_config(vocab_size)
    config.num_labels = len(data.UPOS_TAGS)
    model = BertForTokenClassification(config)
    if body is not None:
        model.bert.load_state_dict(body.bert.state_dict())
    return model


def _rows(encoded: dict[str, torch.Tensor], index, device="cpu") -> dict[str, torch.Tensor]:
    """The rows ``index`` of an encoded set, cut to their longest row (no all-padding columns)."""
    part = {k: v[index] for k, v in encoded.items()}
    length = int(part["attention_mask"].sum(1).max())
    return {k: v[:, :length].to(device) for k, v in part.items()}


def _tag_logits(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


@torch.no_grad()
def tag_accuracy(model, encoded: dict[str, torch.Tensor], batch: int = 256, device="cpu") -> float:
    """Share of the labelled words (first WordPieces) whose highest-scoring tag is right."""
    model.to(device).eval()
    order = torch.argsort(encoded["attention_mask"].sum(1), stable=True)  # little padding
    correct = total = 0
    for s in range(0, len(order), batch):
        part = _rows(encoded, order[s : s + batch], device)
        labelled = part["labels"] != -100
        predicted = _tag_logits(model, part).argmax(-1)
        correct += int((predicted[labelled] == part["labels"][labelled]).sum())
        total += int(labelled.sum())
    model.cpu()
    return correct / total


def train_tagger(
    model,
    encoded: dict[str, torch.Tensor],
    cfg: FinetuneConfig,
    seed: int = 0,
    device="cpu",
    progress: bool = False,
):
    """Fine-tune a token classifier on :func:`encode_tags` rows with :func:`tlcourse.train.fit`.

    ``cfg.steps(n)`` minibatches of ``cfg.batch`` sentences of similar length
    (:func:`tlcourse.finetune.length_grouped_batches`, seeded by ``seed``); cross-entropy over the
    labelled pieces; AdamW (weight decay 0.01) with linear warm-up and decay, gradients clipped to
    norm 1. Only parameters with ``requires_grad`` train, so a frozen body stays as it is. Returns
    the training :class:`~tlcourse.train.History`.
    """
    steps = cfg.steps(len(encoded["input_ids"]))
    gen = torch.Generator().manual_seed(seed)
    order = length_grouped_batches(
        encoded["attention_mask"].sum(1), cfg.batch, steps, gen, cfg.group
    )

    def loss_fn(m, batch) -> torch.Tensor:  # the -100 labels are ignored
        return F.cross_entropy(_tag_logits(m, batch).flatten(0, 1), batch["labels"].flatten())

    model.to(device)
    history = fit(
        model,
        (_rows(encoded, index, device) for index in order),
        loss_fn,
        steps=steps,
        lr=cfg.lr,
        weight_decay=0.01,
        clip_grad=1.0,
        warmup=int(cfg.warmup * steps),
        progress=progress,
        desc="tagger",
    )
    model.cpu()
    return history
