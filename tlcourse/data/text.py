"""Text classification sets (SST-2, UCI sentiment, AG News, RTE) and line corpora (Gutenberg,
WikiText-2, Tiny Shakespeare), read from the data directory or the data bundle, or from the hub
where its copy loads to the same rows (counts and content digest checked).

Local texts are kept byte-for-byte (SST-2's trailing space, AG News' ``\\`` line-break marks and
``#39;`` entities); only the UCI sentences are stripped (``imdb_labelled.txt`` pads them with
spaces).
"""

from __future__ import annotations

from pathlib import Path

import datasets
from datasets import ClassLabel, DatasetDict, Features, Value

from ._hub import NO_PUBLIC_COMMIT, HubSource, conform, fetch, fetch_files, same_data
from ._paths import PathLike, check_name, locate
from ._read import (
    bad_line,
    build,
    check_header,
    fields,
    label_id,
    lines_dataset,
    memoised,
    read_lines,
)

SST2_LABELS: tuple[str, ...] = ("negative", "positive")
AG_NEWS_LABELS: tuple[str, ...] = ("World", "Sports", "Business", "Sci/Tech")
RTE_LABELS: tuple[str, ...] = ("entailment", "not_entailment")
UCI_DOMAINS: dict[str, str] = {
    "amazon": "sentiment_labelled_sentences/amazon_cells_labelled.txt",
    "imdb": "sentiment_labelled_sentences/imdb_labelled.txt",
    "yelp": "sentiment_labelled_sentences/yelp_labelled.txt",
}
GUTENBERG_BOOKS: tuple[str, ...] = (
    "austen-emma",
    "austen-persuasion",
    "austen-sense",
    "blake-poems",
    "bryant-stories",
    "burgess-busterbrown",
    "carroll-alice",
    "chesterton-ball",
    "chesterton-brown",
    "chesterton-thursday",
    "edgeworth-parents",
    "melville-moby_dick",
    "milton-paradise",
    "shakespeare-caesar",
    "shakespeare-hamlet",
    "shakespeare-macbeth",
    "whitman-leaves",
)
TEXT_CORPORA: tuple[str, ...] = ("gutenberg", "wikitext2", "tinyshakespeare")

# Hub copies, used only when they load to the course's rows (rows and digest: see HubSource).
SST2_HUB = HubSource(
    "stanfordnlp/sst2",
    unpinned=NO_PUBLIC_COMMIT,
    rows=(("train", 67_349), ("validation", 872)),
    digest="b3d363be5b0d2485922c3a6d9a15cf1ec3524dfdaeec41ea645e149416ff476b",
)
AG_NEWS_HUB = HubSource(
    None,
    note="fancyzhx/ag_news is other data: the full 120,000-row train split, title + description",
)
RTE_HUB = HubSource(
    "nyu-mll/glue",
    config="rte",
    unpinned=NO_PUBLIC_COMMIT,
    rows=(("train", 2_490), ("validation", 277), ("test", 3_000)),
    digest="95909ed40d2c652a2e552d2ce9620b111094c23a49298cabe9e34140d5bbc472",
)
WIKITEXT2_HUB = HubSource(
    "Salesforce/wikitext",
    config="wikitext-2-v1",
    # The commit in public projects' HF-cache paths
    # (datasets--Salesforce--wikitext/snapshots/b08601e…).
    revision="b08601e04326c79dfdd32d625aee71d232d685c3",
    rows=(("validation", 3_760), ("test", 4_358)),
    digest="dff223cca839b99eaaf99f69b9fdf44139ddd50b2af61cb7abbb153ea73756ee",
)
TINYSHAKESPEARE_HUB = HubSource(
    "karpathy/tiny_shakespeare",
    unpinned=NO_PUBLIC_COMMIT,
    rows=(("", 40_000),),
    digest="f10d3b3ce96d54f02e14b306730092815a5fdeecde1ad1400b44cc54674c23e2",
)
# A byte-identical copy of the UCI files (checked against the shared data's sha256 on download,
# which is what pins it).
UCI_HUB = HubSource(
    "IsaacDev/sentiment-labelled-sentences",
    files=tuple((rel, rel.rsplit("/", 1)[1]) for rel in UCI_DOMAINS.values()),
    unpinned="no public commit id found; every downloaded file is checked against its sha256",
)
GUTENBERG_HUB = HubSource(None, note="this tokenized NLTK Gutenberg selection is not on the hub")

_SST2_FEATURES = Features(
    {"sentence": Value("string"), "label": ClassLabel(names=list(SST2_LABELS))}
)
_AG_FEATURES = Features({"text": Value("string"), "label": ClassLabel(names=list(AG_NEWS_LABELS))})
_RTE_FEATURES = Features(
    {
        "idx": Value("int32"),
        "sentence1": Value("string"),
        "sentence2": Value("string"),
        "label": ClassLabel(names=list(RTE_LABELS)),
    }
)
_BINARY = {"0": 0, "1": 1}


# --- parsers (memoised on the file's path, size and mtime) ----------------------------------


@memoised
def _read_sst2(path: Path) -> datasets.Dataset:
    lines = read_lines(path)
    check_header(path, lines, "sentence\tlabel")
    sentences, labels = [], []
    for lineno, line in enumerate(lines[1:], start=2):
        sentence, label = fields(path, lineno, line, 2)
        sentences.append(sentence)
        labels.append(label_id(path, lineno, label, _BINARY))
    return build({"sentence": sentences, "label": labels}, _SST2_FEATURES)


@memoised
def _read_uci(path: Path) -> datasets.Dataset:
    sentences, labels = [], []
    for lineno, line in enumerate(read_lines(path), start=1):
        if "\t" not in line:
            raise bad_line(path, lineno, f"expected 'sentence<TAB>label', got {line[:100]!r}")
        sentence, label = line.rsplit("\t", 1)
        sentences.append(sentence.strip())
        labels.append(label_id(path, lineno, label.strip(), _BINARY))
    return build({"sentence": sentences, "label": labels}, _SST2_FEATURES)


@memoised
def _read_ag_news(path: Path) -> datasets.Dataset:
    ids = {name: i for i, name in enumerate(AG_NEWS_LABELS)}
    texts, labels = [], []
    for lineno, line in enumerate(read_lines(path), start=1):
        text, label = fields(path, lineno, line, 2)
        texts.append(text)
        labels.append(label_id(path, lineno, label, ids))
    return build({"text": texts, "label": labels}, _AG_FEATURES)


@memoised
def _read_rte(path: Path, labelled: bool) -> datasets.Dataset:
    lines = read_lines(path)
    check_header(path, lines, "index\tsentence1\tsentence2" + ("\tlabel" if labelled else ""))
    ids = {name: i for i, name in enumerate(RTE_LABELS)}
    columns: dict[str, list] = {"idx": [], "sentence1": [], "sentence2": [], "label": []}
    for lineno, line in enumerate(lines[1:], start=2):
        parts = fields(path, lineno, line, 4 if labelled else 3)
        if not parts[0].isdigit():
            raise bad_line(path, lineno, f"index {parts[0]!r} is not a number")
        columns["idx"].append(int(parts[0]))
        columns["sentence1"].append(parts[1])
        columns["sentence2"].append(parts[2])
        columns["label"].append(label_id(path, lineno, parts[3], ids) if labelled else -1)
    return build(columns, _RTE_FEATURES)


@memoised
def _read_corpus(path: Path) -> datasets.Dataset:
    return lines_dataset(read_lines(path))


@memoised
def _read_books(paths: tuple[Path, ...]) -> datasets.Dataset:
    texts: list[str] = []
    books: list[str] = []
    for path in paths:
        lines = read_lines(path)
        texts.extend(lines)
        books.extend([path.stem] * len(lines))
    return build(
        {"text": texts, "book": books}, Features({"text": Value("string"), "book": Value("string")})
    )


# --- public loaders -------------------------------------------------------------------------


def load_sst2(data_dir: PathLike | None = None) -> DatasetDict:
    """SST-2 (Socher et al. 2013, EMNLP; GLUE, Wang et al. 2019): ``train`` 67,349 /
    ``validation`` 872.

    Columns ``sentence`` (lower-cased, PTB-tokenized; train rows are phrases and sentences) and
    ``label`` (ClassLabel 0 negative / 1 positive). Hub: ``stanfordnlp/sst2`` (its unlabelled test
    split is dropped). The source domain of the domain-adaptation chapters.
    """
    files = {"train": "sst2/train.tsv", "validation": "sst2/dev.tsv"}
    paths = locate(list(files.values()), data_dir)
    if paths is None:
        raw = fetch("SST-2", list(files.values()), SST2_HUB, data_dir)
        hub = DatasetDict({split: conform(raw[split], _SST2_FEATURES) for split in files})
        return same_data("SST-2", list(files.values()), SST2_HUB, hub)
    return DatasetDict({split: _read_sst2(path) for split, path in zip(files, paths)})


def load_uci_sentiment(
    domain: str | None = None, data_dir: PathLike | None = None
) -> datasets.Dataset | DatasetDict:
    """UCI Sentiment Labelled Sentences (Kotzias et al. 2015, KDD): 1,000 sentences per domain,
    500/500.

    ``domain`` is ``amazon``, ``imdb`` or ``yelp`` (a ``Dataset``); ``None`` gives a ``DatasetDict``
    keyed by domain. Columns ``sentence`` (surrounding spaces stripped) and ``label`` (0 negative /
    1 positive, as SST-2): the target domains of the domain-adaptation chapters. Hub: a
    byte-identical mirror of the three files, ``IsaacDev/sentiment-labelled-sentences``
    (sha256-checked).
    """
    if domain is not None:
        check_name("domain", domain, UCI_DOMAINS)
    domains = list(UCI_DOMAINS) if domain is None else [domain]
    files = [UCI_DOMAINS[d] for d in domains]
    paths = locate(files, data_dir)
    if paths is None:
        paths = fetch_files("UCI Sentiment Labelled Sentences", files, UCI_HUB, data_dir)
    parts = {d: _read_uci(path) for d, path in zip(domains, paths)}
    return parts[domain] if domain is not None else DatasetDict(parts)


def load_ag_news(data_dir: PathLike | None = None) -> DatasetDict:
    """AG News (Zhang, Zhao & LeCun 2015, NeurIPS): ``train`` 10,001 (a subset of the official
    train) / ``test`` 7,600 (official, 1,900 per class).

    Columns ``text`` (the article description only) and ``label`` (ClassLabel 0 World, 1 Sports,
    2 Business, 3 Sci/Tech, the official order). No hub fallback: ``fancyzhx/ag_news`` differs
    (its train split is the full 120,000 and its text is title + description). Non-commercial
    research use only.
    """
    files = {"train": "ag_news_subset/train_subset.tsv", "test": "ag_news_subset/test.tsv"}
    paths = locate(list(files.values()), data_dir)
    if paths is None:
        fetch("AG News", list(files.values()), AG_NEWS_HUB, data_dir)  # raises: hub has other data
    return DatasetDict({split: _read_ag_news(path) for split, path in zip(files, paths)})


def load_rte(data_dir: PathLike | None = None) -> DatasetDict:
    """RTE as in GLUE (Dagan et al. 2006 … Bentivogli et al. 2009; Wang et al. 2019): ``train``
    2,490 / ``validation`` 277 / ``test`` 3,000.

    Columns ``idx``, ``sentence1``, ``sentence2`` and ``label`` (ClassLabel 0 entailment /
    1 not_entailment; -1 on the unlabelled test split), as ``nyu-mll/glue`` config ``rte`` on the
    hub.
    """
    files = {
        "train": "glue_rte/train.tsv",
        "validation": "glue_rte/dev.tsv",
        "test": "glue_rte/test.tsv",
    }
    paths = locate(list(files.values()), data_dir)
    if paths is None:
        raw = fetch("RTE (GLUE)", list(files.values()), RTE_HUB, data_dir)
        hub = DatasetDict({split: conform(raw[split], _RTE_FEATURES) for split in files})
        return same_data("RTE (GLUE)", list(files.values()), RTE_HUB, hub)
    return DatasetDict(
        {split: _read_rte(path, split != "test") for split, path in zip(files, paths)}
    )


def load_text(name: str, data_dir: PathLike | None = None) -> datasets.Dataset | DatasetDict:
    """A language-modelling corpus, one row per line of its files (blank lines included, as counted
    by the data README and by the ``<eos>``-per-line convention of WikiText):

    - ``gutenberg``: the tokenized NLTK Project Gutenberg selection (Bird, Klein & Loper 2009),
      17 books, 66,372 lines: one ``Dataset`` with columns ``text`` and ``book`` (file stem, e.g.
      ``carroll-alice``; hold out whole books with ``ds.filter``). Local only.
    - ``wikitext2``: WikiText-2 v1, tokenized (Merity et al. 2017): ``DatasetDict`` ``validation``
      3,760 / ``test`` 4,358 lines, column ``text`` (no train split offline). Hub:
      ``Salesforce/wikitext``.
    - ``tinyshakespeare``: Karpathy's char-rnn corpus (2015), 40,000 lines, column ``text``.
      Hub: ``karpathy/tiny_shakespeare`` (its splits are re-joined and cut into lines).
    """
    check_name("corpus", name, TEXT_CORPORA)
    if name == "gutenberg":
        files = [f"gutenberg_selection/{book}.txt" for book in GUTENBERG_BOOKS]
        paths = locate(files, data_dir)
        if paths is None:
            fetch("the Gutenberg selection", files, GUTENBERG_HUB, data_dir)  # raises: no hub copy
        return _read_books(tuple(paths))
    if name == "wikitext2":
        files = {"validation": "wikitext2/valid.txt", "test": "wikitext2/test.txt"}
        paths = locate(list(files.values()), data_dir)
        if paths is None:
            raw = fetch("WikiText-2", list(files.values()), WIKITEXT2_HUB, data_dir)
            hub = DatasetDict(
                {split: lines_dataset(_wikitext_lines(raw[split]["text"])) for split in files}
            )
            return same_data("WikiText-2", list(files.values()), WIKITEXT2_HUB, hub)
        return DatasetDict({split: _read_corpus(path) for split, path in zip(files, paths)})
    files = ["tinyshakespeare/input.txt"]
    paths = locate(files, data_dir)
    if paths is None:
        raw = fetch("Tiny Shakespeare", files, TINYSHAKESPEARE_HUB, data_dir)
        text = "".join(
            raw[split]["text"][0] for split in ("train", "validation", "test") if split in raw
        )
        lines = text.split("\n")
        hub = lines_dataset(lines[:-1] if lines and lines[-1] == "" else lines)
        return same_data("Tiny Shakespeare", files, TINYSHAKESPEARE_HUB, hub)
    return _read_corpus(paths[0])


def _wikitext_lines(rows: list[str]) -> list[str]:
    """Hub WikiText rows as the local file's lines: drop the trailing newline; blank rows ``""``
    become ``" "``."""
    return [row[:-1] if row.endswith("\n") else (row or " ") for row in rows]
