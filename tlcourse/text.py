"""Word-level text plumbing shared by the chapters: a tokenizer, a vocabulary, and the pretraining
corpus.

The chapters that train their own word-level models (the opening chapter's bag-of-words
classifier, word2vec and GloVe) use :func:`tokenize` and :class:`Vocab`; the transformer chapters
use ``tokenizers`` instead. :func:`lm_sentences` and :func:`corpus_texts` are the course's small
pretraining corpus (the Gutenberg selection and WikiText-2 valid/test): cased, tokenised sentences
for chapter 3's biLM, the same lines as text for chapter 4's BERT and chapter 5's T5.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import torch

from . import data

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
# WikiText's escaped in-word marks ("3 @-@ 4", "1 @,@ 000"), mapped back to the plain characters
WIKITEXT_MARKS = {"@-@": "-", "@,@": ",", "@.@": "."}

# "n't" is split off the way the Penn Treebank does it, so that the raw UCI review text
# ("doesn't") and the PTB-tokenised SST-2 text ("does n't") give the same tokens.
_TOKEN = re.compile(r"n't|[a-z]+(?:'[a-z]+)?|[0-9]+|[^\sa-z0-9]")


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens: letters (with an inner apostrophe), digits, or one punctuation
    mark."""
    return _TOKEN.findall(text.lower().replace("n't", " n't"))


@dataclass
class Vocab:
    """A frozen word <-> id mapping; id 0 is ``<unk>`` and the last id is ``<pad>``."""

    itos: list[str]
    counts: Counter = field(default_factory=Counter, repr=False)

    UNK = UNK  # "<unk>", as above
    PAD = "<pad>"

    def __post_init__(self) -> None:
        if self.itos[:1] != [self.UNK] or self.itos[-1:] != [self.PAD]:
            raise ValueError(
                "Vocab.itos must start with '<unk>' and end with '<pad>'; "
                "build it with Vocab.build()."
            )
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @classmethod
    def build(
        cls, texts: Iterable[Sequence[str]], min_count: int = 1, max_size: int | None = None
    ) -> "Vocab":
        """Words seen at least ``min_count`` times, most frequent first (ties alphabetical, so it is
        deterministic)."""
        counts: Counter = Counter()
        for tokens in texts:
            counts.update(tokens)
        words = sorted(
            (w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w)
        )
        if max_size is not None:
            words = words[:max_size]
        return cls([cls.UNK, *words, cls.PAD], counts)

    def __len__(self) -> int:
        return len(self.itos)

    @property
    def pad_id(self) -> int:
        return len(self.itos) - 1

    def encode(self, tokens: Sequence[str]) -> list[int]:
        return [self.stoi.get(t, 0) for t in tokens]

    def encode_batch(self, token_lists: Sequence[Sequence[str]], max_len: int) -> torch.Tensor:
        """A ``(n, max_len)`` LongTensor, truncated and right-padded with ``pad_id``; empty texts
        become ``[<unk>]``."""
        out = torch.full((len(token_lists), max_len), self.pad_id, dtype=torch.long)
        for i, tokens in enumerate(token_lists):
            ids = self.encode(tokens[:max_len]) or [0]
            out[i, : len(ids)] = torch.tensor(ids)
        return out


def lm_sentences(max_len: int, data_dir=None) -> list[list[str]]:
    """Cased, tokenised sentences of the Gutenberg selection and WikiText-2 valid/test, cut to
    ``max_len`` (WikiText's ``@-@``-style marks restored; lines of fewer than two tokens
    dropped)."""
    wiki = data.load_text("wikitext2", data_dir=data_dir)
    lines = [
        *data.load_text("gutenberg", data_dir=data_dir)["text"],
        *wiki["validation"]["text"],
        *wiki["test"]["text"],
    ]
    out = []
    for line in lines:
        tokens = [WIKITEXT_MARKS.get(t, t) for t in line.split()]
        if len(tokens) >= 2:
            out.append(tokens[:max_len])
    return out


def corpus_texts(data_dir=None) -> list[str]:
    """The :func:`lm_sentences` as untruncated text lines, WikiText's ``<unk>`` dropped (the
    pretraining text of chapter 4's WordPiece and BERT and of chapter 5's T5)."""
    return [" ".join(w for w in s if w != UNK) for s in lm_sentences(10**9, data_dir)]
