"""Chapter 4: BERT's masked language modelling, with the output layer applied only where it is
needed.

Devlin et al. (2019), section 3.1: choose 15% of the (non-special) positions; replace 80% of those
with ``[MASK]``, 10% with a random token and leave 10% unchanged; predict the original tokens at the
chosen positions only. Since the loss ignores every other position, the vocabulary projection
(hidden × vocabulary, the most expensive layer of a small BERT) need only run at the chosen 15%:
:func:`gathered_mlm_loss` gathers those hidden states before the head, and gives the same loss as
``BertForMaskedLM(...).loss`` (tested to 1e-5).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import hub
from .train import fit, seeded


def mask_tokens(
    input_ids: torch.Tensor,
    special: torch.Tensor,
    mask_id: int,
    vocab_size: int,
    generator: torch.Generator | None = None,
    mlm_probability: float = 0.15,
    word_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: returns ``(inputs, labels)`` with ``labels = -100`` where nothing is
    predicted.

    ``special`` marks positions that are never chosen (``[CLS]``, ``[SEP]``, padding). With
    ``word_ids`` (the word index of each position, -1 for special ones), whole words are chosen
    together (whole-word masking), each with probability ``mlm_probability``.
    """
    if input_ids.shape != special.shape:
        raise ValueError(
            f"mask_tokens: input_ids {tuple(input_ids.shape)} "
            f"and special {tuple(special.shape)} differ."
        )
    probability = torch.full(input_ids.shape, mlm_probability)
    if word_ids is None:
        chosen = torch.bernoulli(
            probability.masked_fill(special.bool(), 0.0), generator=generator
        ).bool()
    else:  # one draw per word, shared by its pieces
        per_word = torch.bernoulli(
            torch.full((int(word_ids.max()) + 2,), mlm_probability), generator=generator
        ).bool()
        chosen = per_word[word_ids.clamp(min=-1) + 1] & ~special.bool() & (word_ids >= 0)
    labels = input_ids.masked_fill(~chosen, -100)
    inputs = input_ids.clone()
    to_mask = torch.bernoulli(torch.full(input_ids.shape, 0.8), generator=generator).bool() & chosen
    inputs[to_mask] = mask_id
    # Half of the remaining 20%: a random token; the other half keeps the original.
    to_random = (
        torch.bernoulli(torch.full(input_ids.shape, 0.5), generator=generator).bool()
        & chosen
        & ~to_mask
    )
    inputs[to_random] = torch.randint(vocab_size, input_ids.shape, generator=generator)[to_random]
    return inputs, labels


def gathered_mlm_loss(
    model, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """``BertForMaskedLM``'s loss, with the prediction head run only at positions whose label is not
    -100."""
    hidden = model.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    chosen = labels != -100
    logits = model.cls(hidden[chosen])  # (n_chosen, vocab) instead of (batch, length, vocab)
    return F.cross_entropy(logits, labels[chosen])


# --------------------------------------------------------------------------------------------
# Pretraining a tiny BERT


@dataclass(frozen=True)
class TinyBertConfig:
    """A small BERT (Turc et al. 2019's "tiny" size is 2 layers x 128) and its pretraining
    budget."""

    hidden: int = 128
    layers: int = 2
    heads: int = 2
    intermediate: int = 512
    max_len: int = 64
    steps: int = 1500
    batch: int = 64
    lr: float = 1e-3
    warmup: int = 100
    seed: int = 0

    def bert_config(self, vocab_size: int):
        from transformers import BertConfig

        return BertConfig(
            vocab_size=vocab_size,
            hidden_size=self.hidden,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            intermediate_size=self.intermediate,
            max_position_embeddings=self.max_len,
        )


def pack_sequences(tokenizer, texts: Sequence[str], max_len: int) -> torch.Tensor:
    """Consecutive texts tokenised and packed into ``[CLS] ... [SEP]`` rows of exactly ``max_len``
    ids."""
    pieces = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    stream = np.fromiter((i for ids in pieces for i in ids), dtype=np.int64)
    body = max_len - 2
    rows = len(stream) // body
    ids = torch.from_numpy(stream[: rows * body].reshape(rows, body))
    cls = torch.full((rows, 1), tokenizer.cls_token_id)
    sep = torch.full((rows, 1), tokenizer.sep_token_id)
    return torch.cat([cls, ids, sep], 1)


def pretrain_mlm(
    name: str,
    tokenizer,
    texts: Sequence[str],
    cfg: TinyBertConfig,
    device="cpu",
    progress: bool = True,
):
    """Pretrain a ``BertForMaskedLM`` of size ``cfg`` on ``texts`` with :func:`gathered_mlm_loss`;
    cached.

    Training is :func:`tlcourse.train.fit`: AdamW (weight decay 0.01), ``cfg.warmup`` steps of
    linear warm-up then linear decay to zero at ``cfg.steps``, gradients clipped to norm 1. Each
    step draws ``cfg.batch`` packed rows (:func:`pack_sequences`) and masks them afresh
    (:func:`mask_tokens`). Returns the model and ``meta`` with the seconds, the loss per step, the
    rows and the epochs.
    """
    from transformers import BertForMaskedLM

    rows = pack_sequences(tokenizer, texts, cfg.max_len)
    key = {
        "texts": len(texts),
        "rows": len(rows),
        "vocab": len(tokenizer),
        **asdict(cfg),
        "loop": "train.fit",
    }

    def build():
        return BertForMaskedLM(cfg.bert_config(len(tokenizer)))

    def batches():
        gen = torch.Generator().manual_seed(cfg.seed)
        special = torch.zeros(cfg.batch, cfg.max_len, dtype=torch.bool)
        special[:, [0, -1]] = True
        while True:
            batch = rows[torch.randint(len(rows), (cfg.batch,), generator=gen)]
            yield mask_tokens(batch, special, tokenizer.mask_token_id, len(tokenizer), gen)

    def loss_fn(model, batch) -> torch.Tensor:
        inputs, labels = (t.to(device) for t in batch)
        return gathered_mlm_loss(model, inputs, torch.ones_like(inputs), labels)

    def train(model) -> dict:
        model.to(device)
        start = time.perf_counter()
        history = fit(
            model,
            batches(),
            loss_fn,
            steps=cfg.steps,
            lr=cfg.lr,
            weight_decay=0.01,
            clip_grad=1.0,
            warmup=cfg.warmup,
            progress=progress,
            desc=name,
        )
        model.cpu().eval()
        return {
            "seconds": time.perf_counter() - start,
            "loss": history.loss,
            "rows": len(rows),
            "epochs": cfg.steps * cfg.batch / len(rows),
        }

    with seeded(cfg.seed):  # the init and the dropout of training, as one stream
        model, meta = hub.cached_module(name, key, build, train, verbose=progress)
    return model.eval(), meta
