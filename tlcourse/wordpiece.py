"""Chapter 4: a WordPiece tokenizer trained with 🤗 tokenizers, wrapped as a transformers fast
tokenizer.

WordPiece (Schuster & Nakajima 2012; Wu et al. 2016) is BERT's subword vocabulary: frequent words
stay whole, rare ones split into pieces marked ``##``. We train one on the chapter's corpus with
BERT's normaliser (lower-casing, accents stripped) and pre-tokeniser, add BERT's special tokens and
``[CLS] A [SEP] (B [SEP])`` template, and wrap it with ``BertTokenizerFast(tokenizer_object=...)``
(passing ``vocab_file=`` is silently ignored by transformers 5 — every token becomes ``[UNK]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from . import hub
from ._fs import atomic_dir

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_wordpiece(texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2):
    """Train a lower-cased WordPiece vocabulary on ``texts`` and return a ``BertTokenizerFast``."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import BertTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True, clean_text=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS
    )
    tok.train_from_iterator(texts, trainer=trainer)
    # The trainer breaks ties between equally frequent pieces in hash-map order, which changes from
    # one process to the next: the same pieces get different ids, and a seeded model built on them
    # different weights. Renumbering the pieces in a fixed order makes the ids reproducible;
    # WordPiece's greedy longest-match tokenisation does not depend on the ids.
    pieces = sorted(set(tok.get_vocab()) - set(SPECIAL_TOKENS))
    tok.model = models.WordPiece(
        {p: i for i, p in enumerate(SPECIAL_TOKENS + pieces)}, unk_token="[UNK]"
    )
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    return BertTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        do_lower_case=True,
    )


def cached_wordpiece(name: str, texts: list[str], vocab_size: int, verbose: bool = True):
    """:func:`train_wordpiece`, saved with ``save_pretrained`` under the artefact cache and
    reused."""
    from transformers import BertTokenizerFast

    config = {"texts": len(texts), "chars": sum(map(len, texts)), "vocab_size": vocab_size}
    folder = hub.artifact_dir(name, config)
    if (folder / "tokenizer.json").is_file():
        if verbose:
            print(f"{name}: loaded from cache {hub.shown(folder)}")
        return BertTokenizerFast.from_pretrained(str(folder))
    tokenizer = train_wordpiece(texts, vocab_size)
    with atomic_dir(Path(folder)) as tmp:
        tokenizer.save_pretrained(str(tmp))
    if verbose:
        print(f"{name}: trained and cached in {hub.shown(folder)}")
    return tokenizer
