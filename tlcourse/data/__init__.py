"""Offline-first dataset loaders: every chapter's data as ``datasets.Dataset`` / ``DatasetDict``.

Resolution order (CONVENTIONS.md, "Data and models"): the data directory (``data_dir=`` argument,
:func:`set_data_dir`, or ``$TLCOURSE_DATA``, laid out as the course's shared data folder), then the
course data bundle (:mod:`.bundle`: the download cache, else a hash-checked download; fetch ahead of
time with :func:`download`), then the Hugging Face hub when online and a reliable copy exists
(normalised to the same columns and labels), then a :class:`DataNotFoundError` saying what to set.
Local files are checked against the sha256 of their ``SOURCE.md`` (:class:`DataCorruptError` on a
mismatch). Everything is built in memory; downloads are kept in the bundle's download cache and
the hub's under :func:`cache_dir`. Parsed files are cached for the process.

Label budgets (:mod:`tlcourse.data.subsets`): :func:`label_budget_indices` and :func:`budget_subset`
draw class-balanced, nested, seeded training subsets; :func:`stratified_split` a balanced test
split.

>>> from tlcourse import data
>>> data.load("sst2")["train"][0]          # doctest: +SKIP
{'sentence': 'hide new secretions from the parental units ', 'label': 0}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ._hub import HubSource
from ._paths import (
    DataCorruptError,
    DataDownloadError,
    DataFormatError,
    DataNotFoundError,
    DownloadCorruptError,
    UnknownDataError,
    cache_dir,
    check_name,
    data_dir,
    describe_data_dir,
    hub_offline,
    set_data_dir,
)
from .lexical import (
    ANALOGY_HUB,
    SIMILARITY_HUB,
    SIMILARITY_SETS,
    load_analogy,
    load_word_similarity,
)
from .omniglot import OMNIGLOT_HUB, OMNIGLOT_PARTS, load_omniglot
from .pretrain import (
    PRETRAIN_HUB,
    PRETRAIN_SOURCES,
    load_pretrain_corpus,
    sample_pretrain_corpus,
)
from .subsets import budget_subset, label_budget_indices, label_order, stratified_split
from .text import (
    AG_NEWS_HUB,
    AG_NEWS_LABELS,
    GUTENBERG_HUB,
    RTE_HUB,
    RTE_LABELS,
    SST2_HUB,
    SST2_LABELS,
    TEXT_CORPORA,
    TINYSHAKESPEARE_HUB,
    UCI_DOMAINS,
    UCI_HUB,
    WIKITEXT2_HUB,
    load_ag_news,
    load_rte,
    load_sst2,
    load_text,
    load_uci_sentiment,
)
from .ud import PARALLEL_HUB, TREEBANKS, UPOS_TAGS, load_pud_parallel, load_ud, ud_hub


@dataclass(frozen=True)
class Entry:
    """One dataset of the registry: its loader, data folder, hub copy, paper and licence."""

    name: str
    loader: Callable[..., Any]
    folder: str
    hub: HubSource
    paper: str
    licence: str


def _bind(loader: Callable[..., Any], first: str) -> Callable[..., Any]:
    def call(**kwargs: Any) -> Any:
        return loader(first, **kwargs)

    call.__name__ = call.__qualname__ = f"{loader.__name__}({first!r})"
    call.__doc__ = loader.__doc__
    return call


REGISTRY: dict[str, Entry] = {
    e.name: e
    for e in [
        Entry(
            "sst2",
            load_sst2,
            "sst2",
            SST2_HUB,
            "Socher et al. 2013; Wang et al. 2019 (GLUE)",
            "research use",
        ),
        Entry(
            "uci_sentiment",
            load_uci_sentiment,
            "sentiment_labelled_sentences",
            UCI_HUB,
            "Kotzias et al. 2015",
            "CC BY 4.0",
        ),
        Entry(
            "ag_news",
            load_ag_news,
            "ag_news_subset",
            AG_NEWS_HUB,
            "Zhang, Zhao & LeCun 2015",
            "non-commercial research use",
        ),
        Entry(
            "rte",
            load_rte,
            "glue_rte",
            RTE_HUB,
            "Dagan et al. 2006 ... Bentivogli et al. 2009; Wang et al. 2019",
            "research use",
        ),
        Entry(
            "gutenberg",
            _bind(load_text, "gutenberg"),
            "gutenberg_selection",
            GUTENBERG_HUB,
            "Project Gutenberg via NLTK (Bird, Klein & Loper 2009)",
            "public domain",
        ),
        Entry(
            "wikitext2",
            _bind(load_text, "wikitext2"),
            "wikitext2",
            WIKITEXT2_HUB,
            "Merity et al. 2017",
            "CC BY-SA 3.0",
        ),
        Entry(
            "pretrain_corpus",
            load_pretrain_corpus,
            "pretrain_corpus",
            PRETRAIN_HUB,
            "Project Gutenberg; Wikipedia; Rastogi et al. 2020 (SGD); Carletta et al. 2005 (AMI); "
            "Vajjala & Lučić 2018 (OneStopEnglish)",
            "public domain, CC BY-SA 3.0/4.0, CC BY 4.0 (per source)",
        ),
        Entry(
            "tinyshakespeare",
            _bind(load_text, "tinyshakespeare"),
            "tinyshakespeare",
            TINYSHAKESPEARE_HUB,
            "Karpathy 2015 (char-rnn)",
            "public domain",
        ),
        Entry(
            "analogy",
            load_analogy,
            "word_embedding_eval/google_analogy",
            ANALOGY_HUB,
            "Mikolov et al. 2013",
            "Apache-2.0",
        ),
        Entry(
            "wordsim353",
            _bind(load_word_similarity, "wordsim353"),
            "word_embedding_eval/wordsim353",
            SIMILARITY_HUB,
            "Finkelstein et al. 2002",
            "research use",
        ),
        Entry(
            "simlex999",
            _bind(load_word_similarity, "simlex999"),
            "word_embedding_eval/SimLex-999",
            SIMILARITY_HUB,
            "Hill, Reichart & Korhonen 2015",
            "research use",
        ),
        Entry(
            "men",
            _bind(load_word_similarity, "men"),
            "word_embedding_eval/MEN",
            SIMILARITY_HUB,
            "Bruni, Tran & Baroni 2014",
            "CC BY 2.0",
        ),
        Entry(
            "ud",
            load_ud,
            "ud_treebanks, ud_pud_parallel",
            ud_hub("<treebank>"),
            "Nivre et al. 2020 (UD v2); Zeman et al. 2017 (PUD)",
            "CC BY-SA 4.0 / 3.0",
        ),
        Entry(
            "pud_parallel",
            load_pud_parallel,
            "ud_pud_parallel",
            PARALLEL_HUB,
            "Zeman et al. 2017",
            "CC BY-SA 3.0",
        ),
        Entry(
            "omniglot",
            load_omniglot,
            "omniglot",
            OMNIGLOT_HUB,
            "Lake, Salakhutdinov & Tenenbaum 2015",
            "MIT",
        ),
    ]
}


def download(names: list[str] | None = None) -> dict:
    """Fetch the course data bundle into the download cache ahead of time (e.g. before going
    offline): all of it, or ``names``, each a data folder (``"glue_rte"``) or a :func:`load` name
    (``"rte"``); returns ``{folder: extracted path}``. See :mod:`tlcourse.data.bundle`."""
    from . import bundle  # late: keeps `python -m tlcourse.data.bundle` free of a double import

    folders: list[str] = []
    for name in names or bundle.bundled():
        if name in REGISTRY and name not in bundle.bundled():
            parts = [part.strip().split("/")[0] for part in REGISTRY[name].folder.split(",")]
        else:
            check_name("dataset", name, sorted({*bundle.bundled(), *REGISTRY}))
            parts = [name]
        folders += [part for part in parts if part not in folders]
    return bundle.download(folders)


def available() -> list[str]:
    """The short names :func:`load` accepts."""
    return sorted(REGISTRY)


def load(name: str, **kwargs: Any) -> Any:
    """Load a dataset by short name, e.g. ``load("sst2")``,
    ``load("ud", treebank="en_ewt", split="train")``.

    Keyword arguments go to the dataset's loader (``data_dir=`` for all; ``domain=``, ``split=``,
    ``part=``, ... where the loader has them). An unknown name raises :class:`UnknownDataError`
    listing :func:`available`.
    """
    check_name("dataset", name, available())
    return REGISTRY[name].loader(**kwargs)


__all__ = [
    "AG_NEWS_LABELS",
    "OMNIGLOT_PARTS",
    "PRETRAIN_SOURCES",
    "REGISTRY",
    "RTE_LABELS",
    "SIMILARITY_SETS",
    "SST2_LABELS",
    "TEXT_CORPORA",
    "TREEBANKS",
    "UCI_DOMAINS",
    "UPOS_TAGS",
    "DataCorruptError",
    "DataDownloadError",
    "DataFormatError",
    "DataNotFoundError",
    "DownloadCorruptError",
    "Entry",
    "HubSource",
    "UnknownDataError",
    "available",
    "budget_subset",
    "cache_dir",
    "data_dir",
    "describe_data_dir",
    "download",
    "hub_offline",
    "label_budget_indices",
    "label_order",
    "load",
    "load_ag_news",
    "load_analogy",
    "load_omniglot",
    "load_pretrain_corpus",
    "load_pud_parallel",
    "load_rte",
    "load_sst2",
    "load_text",
    "load_uci_sentiment",
    "load_ud",
    "load_word_similarity",
    "sample_pretrain_corpus",
    "set_data_dir",
    "stratified_split",
]
