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
        raise ValueError(f"mean_pool: hidden states {tuple(hidden.shape)} do not match the mask {tuple(attention_mask.shape)}.")
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


@torch.no_grad()
def sentence_features(texts: Sequence[str], model_name: str = "minilm", batch_size: int = 64,
                      max_length: int = 128, normalize: bool = True, device: str | torch.device = "cpu",
                      progress: bool = True) -> torch.Tensor:
    """One vector per text from a frozen encoder resolved by :func:`tlcourse.hub.resolve`.

    Texts are sorted by length before batching so that little compute goes to padding; the
    result is returned in the input order.
    """
    tokenizer = hub.load_tokenizer(model_name)
    model = hub.load_model(model_name).to(device).eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = torch.empty(len(texts), model.config.hidden_size)
    for start in progress_bar(range(0, len(texts), batch_size), desc=f"encode with {model_name}", progress=progress, leave=False):
        idx = order[start:start + batch_size]
        batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length,
                          return_tensors="pt").to(device)
        pooled = mean_pool(model(**batch).last_hidden_state, batch["attention_mask"])
        out[idx] = (F.normalize(pooled, dim=-1) if normalize else pooled).float().cpu()
    return out
