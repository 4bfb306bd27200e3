"""Chapter 3: a small ELMo — a character-aware bidirectional language model, and ScalarMix.

Peters et al. (2018), "Deep contextualized word representations": a token encoder over the
characters of each word (a character CNN with a highway layer, Kim et al. 2016), then a forward
and a backward LSTM language model, each two layers deep with a residual connection between the
layers, sharing the token encoder and the softmax. The training loss is the sum of both
directions' negative log-likelihoods (eq. 1 of the paper).

For a token ``k`` the biLM gives ``L + 1`` layers ``h_{k,0..L}``: layer 0 is the token encoding
(repeated for both directions) and layer ``j`` the concatenated forward and backward states.
ELMo's representation for a task is ``γ Σ_j s_j h_{k,j}`` with ``s = softmax(w)`` (eq. 2):
:class:`ScalarMix`, which works on any stack of layers (transformer hidden states too).
:func:`make_batch` wraps sentences in ``<s> ... </s>`` for the biLM; :func:`layer_features` runs the
frozen biLM and returns each token's ``L + 1`` layers.
"""

from __future__ import annotations

import functools

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .text import BOS, EOS

# --------------------------------------------------------------------------------------------
# Characters


PAD_CHAR, BOW, EOW = 0, 1, 2  # character ids; a byte b is 3 + b


@functools.lru_cache(maxsize=1 << 17)
def _word_char_ids(word: str, max_chars: int) -> tuple[int, ...]:
    """One word's padded character ids (cached: a corpus repeats its words many times)."""
    ids = [BOW, *(3 + b for b in word.encode("utf-8")[: max_chars - 2]), EOW]
    return (*ids, *[PAD_CHAR] * (max_chars - len(ids)))


def char_ids(sentences: Sequence[Sequence[str]], max_chars: int = 16) -> torch.Tensor:
    """A ``(batch, tokens, max_chars)`` tensor of UTF-8 byte ids, each word wrapped in begin/end
    marks.

    Any string has an encoding, so the model can represent words it never saw (``PAD_CHAR`` pads).
    """
    longest = max(1, max((len(s) for s in sentences), default=0))
    pad = (PAD_CHAR,) * max_chars
    rows = [
        [_word_char_ids(word, max_chars) for word in sentence] + [pad] * (longest - len(sentence))
        for sentence in sentences
    ]
    return torch.tensor(rows, dtype=torch.long).view(len(sentences), longest, max_chars)


class Highway(nn.Module):
    """``y = g ⊙ relu(W_h x) + (1 - g) ⊙ x`` with ``g = σ(W_g x)`` (Srivastava, Greff & Schmidhuber
    2015)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.transform, self.gate = nn.Linear(dim, dim), nn.Linear(dim, dim)
        nn.init.constant_(
            self.gate.bias, -1.0
        )  # start close to the identity, as in Kim et al. (2016)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = torch.sigmoid(self.gate(x))
        return g * F.relu(self.transform(x)) + (1 - g) * x


class CharCNN(nn.Module):
    """Character embeddings -> convolutions of several widths -> max over characters -> highway ->
    projection."""

    def __init__(
        self,
        out_dim: int,
        char_dim: int = 16,
        filters: Sequence[tuple[int, int]] = ((1, 32), (2, 32), (3, 64), (4, 128), (5, 256)),
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(259, char_dim, padding_idx=PAD_CHAR)
        self.convs = nn.ModuleList(nn.Conv1d(char_dim, n, width) for width, n in filters)
        total = sum(n for _, n in filters)
        self.highway = Highway(total)
        self.project = nn.Linear(total, out_dim)

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = chars.shape
        x = self.embed(chars.view(-1, width)).transpose(1, 2)  # (B·T, char_dim, chars)
        pooled = torch.cat([F.relu(conv(x)).max(dim=2).values for conv in self.convs], 1)
        return self.project(self.highway(pooled)).view(batch, tokens, -1)


# --------------------------------------------------------------------------------------------
# The bidirectional language model


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of ``x`` (batch, time, ...) within its own length; padding stays at the
    end."""
    time = torch.arange(x.shape[1])
    index = (lengths[:, None] - 1 - time[None, :]).clamp(min=0)
    index = torch.where(time[None, :] < lengths[:, None], index, time[None, :])
    return x.gather(1, index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x))


@dataclass(frozen=True)
class BiLMConfig:
    dim: int = 128  # token encoding and LSTM state size per direction
    max_chars: int = 16
    filters: tuple[tuple[int, int], ...] = (
        (1, 32),
        (2, 32),
        (3, 64),
        (4, 64),
        (5, 64),
    )  # (width, count)
    cutoffs: tuple[int, ...] = (2000, 8000)  # adaptive softmax clusters (Grave et al. 2017)
    dropout: float = 0.0  # minutes of pretraining underfit; dropout would only slow learning


class BiLM(nn.Module):
    """Forward and backward 2-layer LSTM language models over a shared character encoder and
    softmax."""

    def __init__(self, vocab_size: int, cfg: BiLMConfig = BiLMConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = CharCNN(cfg.dim, filters=cfg.filters)
        self.forward_lstms = nn.ModuleList(
            nn.LSTM(cfg.dim, cfg.dim, batch_first=True) for _ in range(2)
        )
        self.backward_lstms = nn.ModuleList(
            nn.LSTM(cfg.dim, cfg.dim, batch_first=True) for _ in range(2)
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.softmax = nn.AdaptiveLogSoftmaxWithLoss(
            cfg.dim, vocab_size, list(cfg.cutoffs), div_value=4.0
        )

    def run_lstms(
        self, lstms: nn.ModuleList, x: torch.Tensor, lengths: torch.Tensor
    ) -> list[torch.Tensor]:
        states, inp = [], x
        for k, lstm in enumerate(lstms):
            packed = pack_padded_sequence(
                self.dropout(inp), lengths.cpu(), batch_first=True, enforce_sorted=False
            )
            out, _ = lstm(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
            if k > 0:
                out = out + inp  # ELMo's residual connection between the LSTM layers
            states.append(out)
            inp = out
        return states

    def directions(self, chars: torch.Tensor, lengths: torch.Tensor):
        """Token encodings ``x`` and the per-layer forward and backward states, each (B, T, dim)."""
        x = self.encoder(chars)
        forward = self.run_lstms(self.forward_lstms, x, lengths)
        backward = [
            reverse_padded(h, lengths)
            for h in self.run_lstms(self.backward_lstms, reverse_padded(x, lengths), lengths)
        ]
        return x, forward, backward

    def layers(self, chars: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``(3, B, T, 2·dim)``: layer 0 = [x; x], layers 1-2 = [forward; backward] states."""
        x, forward, backward = self.directions(chars, lengths)
        return torch.stack(
            [torch.cat([x, x], -1), *(torch.cat(p, -1) for p in zip(forward, backward))]
        )

    def lm_losses(
        self, chars: torch.Tensor, words: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean NLL of the forward (next word) and backward (previous word) LMs over real positions.

        Sentences are wrapped in ``<s> ... </s>``; the forward LM predicts positions 1..n+1 from
        the states at 0..n, the backward LM positions 0..n from the states at 1..n+1.
        """
        _, forward, backward = self.directions(chars, lengths)
        mask = torch.arange(words.shape[1] - 1)[None, :] < (lengths[:, None] - 1)
        fwd = self.softmax(self.dropout(forward[-1][:, :-1][mask]), words[:, 1:][mask]).loss
        bwd = self.softmax(self.dropout(backward[-1][:, 1:][mask]), words[:, :-1][mask]).loss
        return fwd, bwd


# --------------------------------------------------------------------------------------------
# Batches and per-token layers


def make_batch(sentences: Sequence[Sequence[str]], stoi: dict[str, int] | None, max_chars: int):
    """``(chars, word ids or None, lengths)`` for sentences wrapped in ``<s> ... </s>`` (unknown
    words: id 0)."""
    wrapped = [[BOS, *s, EOS] for s in sentences]
    lengths = torch.tensor([len(w) for w in wrapped])
    words = None
    if stoi is not None:
        words = torch.zeros(len(wrapped), int(lengths.max()), dtype=torch.long)
        for i, w in enumerate(wrapped):
            words[i, : len(w)] = torch.tensor([stoi.get(x, 0) for x in w])
    return char_ids(wrapped, max_chars), words, lengths


@torch.no_grad()
def layer_features(
    model: BiLM, sentences: Sequence[Sequence[str]], batch: int = 128
) -> list[torch.Tensor]:
    """For each sentence, its tokens' layers ``(L + 1, n_tokens, 2·dim)`` from the frozen biLM
    (boundary marks removed)."""
    model.eval()
    out = []
    for s in range(0, len(sentences), batch):
        group = sentences[s : s + batch]
        chars, _, lengths = make_batch(group, None, model.cfg.max_chars)
        layers = model.layers(chars, lengths)
        out += [layers[:, i, 1 : 1 + len(x)] for i, x in enumerate(group)]
    return out


# --------------------------------------------------------------------------------------------
# ScalarMix


class ScalarMix(nn.Module):
    """ELMo's task-specific mix of layers, ``γ Σ_j softmax(w)_j h_j`` (Peters et al. 2018, eq. 2).

    ``layer_norm=True`` normalises each layer (over its non-masked entries) before mixing, the
    paper's option for layers with very different scales. Works on any (L, ..., dim) stack.
    """

    def __init__(self, n_layers: int, layer_norm: bool = False) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(n_layers))
        self.gamma = nn.Parameter(torch.ones(()))
        self.layer_norm = layer_norm

    @property
    def weights(self) -> torch.Tensor:
        """The normalised layer weights ``s = softmax(w)``."""
        return torch.softmax(self.w, 0)

    def forward(self, layers: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if layers.shape[0] != self.w.shape[0]:
            raise ValueError(
                f"ScalarMix was built for {self.w.shape[0]} layers, "
                f"got a stack of {layers.shape[0]}."
            )
        if self.layer_norm:
            layers = torch.stack([_masked_layer_norm(h, mask) for h in layers])
        s = self.weights.view(-1, *([1] * (layers.dim() - 1)))
        return self.gamma * (s * layers).sum(0)


def _masked_layer_norm(
    h: torch.Tensor, mask: torch.Tensor | None, eps: float = 1e-12
) -> torch.Tensor:
    m = torch.ones(h.shape[:-1], dtype=h.dtype) if mask is None else mask.to(h.dtype)
    m = m[..., None]
    n = m.sum() * h.shape[-1]
    mean = (h * m).sum() / n
    var = (((h - mean) * m) ** 2).sum() / n
    return (h - mean) / torch.sqrt(var + eps)
