"""Word-level text plumbing shared by the chapters: a tokenizer, a vocabulary, and the pretraining
corpus.

The chapters that train their own word-level models (the opening chapter's bag-of-words
classifier, word2vec and GloVe) use :func:`tokenize` and :class:`Vocab`; the transformer chapters
use ``tokenizers`` instead. :func:`corpus_lines` is the course's pretraining text (the Gutenberg
selection and WikiText-2 valid/test, plus, as a chapter's profile asks, a sample of the larger
pretraining corpus): :func:`lm_sentences` cuts it for chapter 3's biLM, :func:`corpus_texts` joins
it for chapter 4's BERT and chapter 5's T5, and chapter 2 lower-cases it for its word vectors.
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


# --------------------------------------------------------------------------------------------
# The course's pretraining text

# Penn-Treebank-style tokens for the raw (untokenized) pretraining corpus, so that its lines look
# like the tokenized Gutenberg selection and SST-2 ("did n't", "sister 's", punctuation apart).
_PTB = re.compile(
    r"\b(?:Mr|Mrs|Ms|Dr|St)\.|[^\W\d_]+(?=n't\b)|n't\b|'(?:s|re|ve|ll|d|m)\b"
    r"|[^\W_]+(?:[-.][^\W_]+)*|\S",
    re.IGNORECASE,
)
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
# A sentence ends at . ! ? (perhaps followed by a closing quote or bracket) before a capital.
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')]))\s+(?=[\"'(]?[A-Z0-9])")
_ABBREVIATION = re.compile(r"(?:\b(?:Mr|Mrs|Ms|Dr|St|Mt|Jr|Sr|Prof|Gen|Col|Capt|No|vs)|\b[A-Z])\.$")


def ptb_tokenize(line: str) -> list[str]:
    """Cased Penn-Treebank-style tokens of raw text: clitics split off (``did n't``, ``sister 's``),
    punctuation apart, hyphenated words and decimals kept whole, curly quotes made straight."""
    return _PTB.findall(line.translate(_QUOTES))


def split_sentences(paragraph: str) -> list[str]:
    """A paragraph cut into sentences at ``.``/``!``/``?`` before a capital, except after a title
    or an initial (``Mr. Holmes``, ``J. Smith``): a rule of thumb, not a trained splitter."""
    out: list[str] = []
    for piece in _SENTENCE_END.split(paragraph.translate(_QUOTES)):
        if out and _ABBREVIATION.search(out[-1]):
            out[-1] += " " + piece
        else:
            out.append(piece)
    return out


def corpus_lines(extra_words: int | None = 0, seed: int = 0, data_dir=None) -> list[list[str]]:
    """The course's pretraining text as cased, tokenised lines.

    The base is the Gutenberg selection (one sentence per line) and WikiText-2 valid/test (one
    paragraph per line), 2.2 M tokens, already tokenized; WikiText's ``@-@``-style marks are mapped
    back and its ``<unk>`` kept. ``extra_words`` adds that many words of whole documents sampled
    from the larger pretraining corpus (:func:`tlcourse.data.sample_pretrain_corpus`, with
    ``seed``; ``None`` adds all 20.1 M words), split into sentences and tokenised with
    :func:`ptb_tokenize`. Lines of fewer than two tokens are dropped.
    """
    wiki = data.load_text("wikitext2", data_dir=data_dir)
    base = [
        *data.load_text("gutenberg", data_dir=data_dir)["text"],
        *wiki["validation"]["text"],
        *wiki["test"]["text"],
    ]
    out = [[WIKITEXT_MARKS.get(t, t) for t in line.split()] for line in base]
    if extra_words is None or extra_words > 0:
        sample = data.sample_pretrain_corpus(extra_words, seed=seed, data_dir=data_dir)
        for paragraph in sample["text"]:
            out.extend(ptb_tokenize(sentence) for sentence in split_sentences(paragraph))
    return [tokens for tokens in out if len(tokens) >= 2]


def lm_sentences(
    max_len: int, data_dir=None, extra_words: int | None = 0, seed: int = 0
) -> list[list[str]]:
    """The :func:`corpus_lines` cut to ``max_len`` tokens (chapter 3's biLM)."""
    return [tokens[:max_len] for tokens in corpus_lines(extra_words, seed, data_dir)]


def corpus_texts(data_dir=None, extra_words: int | None = 0, seed: int = 0) -> list[str]:
    """The :func:`corpus_lines` as text, WikiText's ``<unk>`` dropped (the pretraining text of
    chapter 4's WordPiece and BERT and of chapter 5's T5)."""
    return [" ".join(w for w in s if w != UNK) for s in corpus_lines(extra_words, seed, data_dir)]
