"""Frozen sentence features from a pretrained transformer encoder (feature-based transfer).

``mean_pool`` is the pooling that sentence-transformers' all-MiniLM-L6-v2 was trained with
(Reimers & Gurevych 2019, Sentence-BERT, eq. "MEAN strategy"): the average of the last layer's
token states over the real (non-padding) tokens, here optionally L2-normalised as that model does.
The chapter checks these features against ``SentenceTransformer.encode``.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from . import hub
from .train import progress_bar


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of ``hidden`` (batch, tokens, dim) over positions where ``attention_mask`` is 1."""
    if hidden.shape[:2] != attention_mask.shape:
        raise ValueError(
            f"mean_pool: hidden states {tuple(hidden.shape)} "
            f"do not match the mask {tuple(attention_mask.shape)}."
        )
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


@torch.no_grad()
def sentence_features(
    texts: Sequence[str],
    model_name: str = "minilm",
    batch_size: int = 64,
    max_length: int = 128,
    normalize: bool = True,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> torch.Tensor:
    """One vector per text from a frozen encoder resolved by :func:`tlcourse.hub.resolve`.

    Texts are sorted by length before batching so that little compute goes to padding; the
    result is returned in the input order.
    """
    tokenizer = hub.load_tokenizer(model_name)
    model = hub.load_model(model_name).to(device).eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = torch.empty(len(texts), model.config.hidden_size)
    for start in progress_bar(
        range(0, len(texts), batch_size),
        desc=f"encode with {model_name}",
        progress=progress,
        leave=False,
    ):
        idx = order[start : start + batch_size]
        batch = tokenizer(
            [texts[i] for i in idx],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        ).to(device)
        pooled = mean_pool(model(**batch).last_hidden_state, batch["attention_mask"])
        out[idx] = (F.normalize(pooled, dim=-1) if normalize else pooled).float().cpu()
    return out


@torch.no_grad()
def word_layer_features(
    sentences: Sequence[Sequence[str]],
    model_name: str = "minilm",
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> list[torch.Tensor]:
    """Every layer of a frozen encoder for every *word* of pre-tokenised sentences.

    Returns, per sentence, a ``(layers, n_words, dim)`` tensor (embedding output + each transformer
    layer, from ``output_hidden_states``); a word split into several WordPieces is represented by
    its first piece, the usual choice for tagging (Devlin et al. 2019, section 5.3).
    """
    tokenizer = hub.load_tokenizer(model_name)
    model = hub.load_model(model_name).to(device).eval()
    order = sorted(
        range(len(sentences)), key=lambda k: len(sentences[k])
    )  # little padding per batch
    out: list[torch.Tensor | None] = [None] * len(sentences)
    for start in progress_bar(
        range(0, len(order), batch_size),
        desc=f"layers of {model_name}",
        progress=progress,
        leave=False,
    ):
        ids = order[start : start + batch_size]
        group = [list(sentences[k]) for k in ids]
        batch = tokenizer(
            group,
            is_split_into_words=True,
            padding=True,
            truncation=True,
            max_length=256,
            return_tensors="pt",
        )
        hidden = (
            torch.stack(model(**batch.to(device), output_hidden_states=True).hidden_states)
            .float()
            .cpu()
        )
        for i, (k, words) in enumerate(zip(ids, group)):
            first = {}
            for position, word in enumerate(batch.word_ids(i)):
                if word is not None and word not in first:
                    first[word] = position
            if len(first) != len(words):
                raise ValueError(
                    f"word_layer_features: sentence {k} was truncated ({len(words)} words, "
                    f"{len(first)} kept); shorten it or raise max_length."
                )
            out[k] = hidden[:, i, [first[w] for w in range(len(words))]]
    return out
