"""The course's pretraining corpus, ``pretrain_corpus/``: 20.1 M words of English whose licences
allow redistribution, from five sources (see that folder's ``SOURCE.md``):

=============  ======================================================  ==========  ============
source         what                                                     words       licence
=============  ======================================================  ==========  ============
``fiction``    180 Project Gutenberg books, mostly children's and YA    9.40 M      public domain
``wikipedia``  2,659 English Wikipedia articles (May 2015)              6.27 M      CC BY-SA 3.0
``dialogue``   17,193 task-oriented dialogues (Schema-Guided Dialogue)  3.04 M      CC BY-SA 4.0
``meetings``   171 AMI meeting transcripts, spontaneous speech          0.98 M      CC BY 4.0
``news``       189 Guardian articles rewritten at 3 reading levels      0.38 M      CC BY-SA 4.0
=============  ======================================================  ==========  ============

It follows the spirit of the BabyLM "strict-small" mix (Warstadt et al. 2023): varied registers
rather than one. Lines are paragraphs (books, Wikipedia, news), utterances (dialogue) or sentences
(meetings); the text is *not* tokenized (punctuation attached, case kept); a blank line separates
documents, and documents are the unit to hold out or sample (the news source has each article
three times, so nearby documents overlap). Lines that share a 12-token run with any of the
course's evaluation sets were dropped when the folder was built.

:func:`load_pretrain_corpus` gives one row per document; :func:`sample_pretrain_corpus` a seeded
sample of whole documents of about ``words`` words that keeps the sources' shares, which is how the
``cpu`` profile of a chapter uses a slice of the corpus and the ``gpu`` profile all of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import datasets
import numpy as np
from datasets import Features, Value

from ._hub import HubSource, fetch
from ._paths import PathLike, check_name, locate
from ._read import build, memoised, read_lines

PRETRAIN_SOURCES: dict[str, str] = {
    "fiction": "pretrain_corpus/gutenberg_books.txt",
    "wikipedia": "pretrain_corpus/enwiki_2015.txt",
    "dialogue": "pretrain_corpus/sgd_dialogues.txt",
    "meetings": "pretrain_corpus/ami_meetings.txt",
    "news": "pretrain_corpus/onestopenglish.txt",
}
PRETRAIN_HUB = HubSource(
    None, note="the course assembled this corpus from five sources; it is not on the hub"
)
_FEATURES = Features(
    {
        "source": Value("string"),
        "doc": Value("int32"),
        "text": Value("string"),
        "words": Value("int32"),
    }
)


@memoised
def _read_documents(path: Path, source: str) -> datasets.Dataset:
    """One row per blank-line-separated document: its lines joined with ``\\n``."""
    docs: list[str] = []
    current: list[str] = []
    for line in [*read_lines(path), ""]:
        if line:
            current.append(line)
        elif current:
            docs.append("\n".join(current))
            current = []
    return build(
        {
            "source": [source] * len(docs),
            "doc": list(range(len(docs))),
            "text": docs,
            "words": [len(d.split()) for d in docs],
        },
        _FEATURES,
    )


def _sources(sources: Iterable[str] | None) -> list[str]:
    chosen = list(PRETRAIN_SOURCES) if sources is None else list(sources)
    if not chosen:
        raise ValueError("sources is empty: name at least one of " + ", ".join(PRETRAIN_SOURCES))
    for name in chosen:
        check_name("pretraining source", name, PRETRAIN_SOURCES)
    return chosen


def load_pretrain_corpus(
    sources: Iterable[str] | None = None, data_dir: PathLike | None = None
) -> datasets.Dataset:
    """The pretraining corpus, one row per document (20,770 in all): columns ``source`` (one of
    :data:`PRETRAIN_SOURCES`), ``doc`` (the document's index within its source), ``text`` (its
    lines joined with ``\\n``) and ``words`` (whitespace tokens). ``sources`` picks some of the five
    (default all, in the table's order). Local only: there is no hub copy."""
    chosen = _sources(sources)
    files = [PRETRAIN_SOURCES[s] for s in chosen]
    paths = locate(files, data_dir)
    if paths is None:
        fetch("the pretraining corpus", files, PRETRAIN_HUB, data_dir)  # raises: no hub copy
    parts = [_read_documents(path, s) for s, path in zip(chosen, paths)]
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)


def sample_pretrain_corpus(
    words: int | None,
    seed: int = 0,
    sources: Iterable[str] | None = None,
    data_dir: PathLike | None = None,
) -> datasets.Dataset:
    """About ``words`` words of the corpus as whole documents, one row per line (columns
    ``source`` and ``text``); ``None`` means all of it.

    Each source gets its share of the whole corpus (fiction 47%, Wikipedia 31%, ...), so a sample
    has the corpus's mix. Within a source, documents are taken in one seeded random order until the
    source's budget is reached; the last document is cut at a line so that the budget is not
    overshot by a whole book. The same ``seed`` and a larger ``words`` give a superset (except for
    that last, cut document).
    """
    if words is not None and (not isinstance(words, int) or words <= 0):
        raise ValueError(f"words must be a positive int or None (all of it), got {words!r}")
    corpus = load_pretrain_corpus(sources, data_dir)
    names = np.asarray(corpus["source"])
    counts = np.asarray(corpus["words"], dtype=np.int64)
    total = int(counts.sum())
    texts = corpus["text"]
    rng = np.random.default_rng(seed)
    out_source: list[str] = []
    out_text: list[str] = []
    for name in dict.fromkeys(names.tolist()):  # sources in the corpus's order
        rows = np.flatnonzero(names == name)
        budget = None if words is None else round(words * counts[rows].sum() / total)
        taken = 0
        for row in rows if words is None else rng.permutation(rows):
            if budget is not None and taken >= budget:
                break
            for line in texts[int(row)].split("\n"):
                if budget is not None and taken >= budget:
                    break
                out_source.append(name)
                out_text.append(line)
                taken += len(line.split())
    return build(
        {"source": out_source, "text": out_text},
        Features({"source": Value("string"), "text": Value("string")}),
    )
