"""Universal Dependencies treebanks (CoNLL-U) for cross-lingual POS transfer, and the PUD parallel
text.

One row per sentence: ``id`` (the ``# sent_id``), ``text`` (the ``# text``), ``tokens`` and ``upos``
(syntactic words only: multiword-token ranges ``1-2`` and empty nodes ``8.1`` are skipped, so the
word counts equal each treebank's ``stats.xml``). Splits are ``train``, ``validation`` (alias
``dev``, the UD file name) and ``test``; the PUD treebanks have only ``test``.
"""

from __future__ import annotations

from pathlib import Path

import datasets
from datasets import DatasetDict, Features, Value

from ._checksums import CHECKSUMS
from ._hub import HubSource, fetch
from ._paths import PathLike, check_name, locate
from ._read import bad_line, build, check_header, fields, memoised, read_lines

UPOS_TAGS: tuple[str, ...] = (
    "ADJ",
    "ADP",
    "ADV",
    "AUX",
    "CCONJ",
    "DET",
    "INTJ",
    "NOUN",
    "NUM",
    "PART",
    "PRON",
    "PROPN",
    "PUNCT",
    "SCONJ",
    "SYM",
    "VERB",
    "X",
)  # the 17 universal POS tags (universaldependencies.org/u/pos), alphabetical as there
_UPOS = frozenset(UPOS_TAGS)

TREEBANKS: dict[str, str] = {
    "en_ewt": "ud_treebanks/UD_English-EWT",
    "de_gsd": "ud_treebanks/UD_German-GSD",
    "es_gsd": "ud_treebanks/UD_Spanish-GSD",
    "fr_gsd": "ud_treebanks/UD_French-GSD",
    "ja_gsd": "ud_treebanks/UD_Japanese-GSD",
    "en_pud": "ud_pud_parallel/UD_English-PUD",
    "de_pud": "ud_pud_parallel/UD_German-PUD",
    "es_pud": "ud_pud_parallel/UD_Spanish-PUD",
    "fr_pud": "ud_pud_parallel/UD_French-PUD",
}
SPLITS: tuple[str, ...] = ("train", "validation", "test")
_FILE_SPLIT = {"train": "train", "validation": "dev", "test": "test"}
PARALLEL_FILE = "ud_pud_parallel/parallel_text_en_de_es_fr.tsv"
PARALLEL_LANGS: tuple[str, ...] = ("en", "de", "es", "fr")
PARALLEL_HUB = HubSource(
    None, note="the aligned en/de/es/fr table was built for this course from the PUD treebanks"
)

_SEQ = getattr(datasets, "List", None) or datasets.Sequence  # datasets < 4 has only Sequence
_FEATURES = Features(
    {
        "id": Value("string"),
        "text": Value("string"),
        "tokens": _SEQ(Value("string")),
        "upos": _SEQ(Value("string")),
    }
)


def ud_hub(treebank: str) -> HubSource:
    """The hub copy of a treebank: the parquet conversion of
    ``universal-dependencies/universal_dependencies``."""
    return HubSource(
        "universal-dependencies/universal_dependencies",
        revision="refs/convert/parquet",
        data_dir=treebank,
        note="an older UD release (2.7): counts differ from the shared data",
        unpinned="the hub's parquet conversion branch; no public commit id of it was found",
    )


def treebank_file(treebank: str, split: str) -> str:
    """``ud_treebanks/UD_English-EWT/en_ewt-ud-dev.conllu`` for ``("en_ewt", "validation")``."""
    return f"{TREEBANKS[treebank]}/{treebank}-ud-{_FILE_SPLIT[split]}.conllu"


def treebank_splits(treebank: str, offline: bool = False) -> list[str]:
    """The splits a treebank has (``offline=True``: those that are in the shared data folder)."""
    splits = ["test"] if treebank.endswith("_pud") else list(SPLITS)
    return [s for s in splits if treebank_file(treebank, s) in CHECKSUMS] if offline else splits


@memoised
def _read_conllu(path: Path) -> datasets.Dataset:
    columns: dict[str, list] = {"id": [], "text": [], "tokens": [], "upos": []}
    sent_id = text = None
    tokens: list[str] = []
    tags: list[str] = []
    start = 1

    def flush() -> None:
        if sent_id is None or not tokens:
            raise bad_line(path, start, "sentence without '# sent_id' or without words")
        columns["id"].append(sent_id)
        columns["text"].append(text if text is not None else " ".join(tokens))
        columns["tokens"].append(tokens)
        columns["upos"].append(tags)

    for lineno, line in enumerate(read_lines(path), start=1):
        if not line:
            if sent_id is not None or tokens:
                flush()
            sent_id = text = None
            tokens, tags, start = [], [], lineno + 1
        elif line.startswith("#"):
            if line.startswith("# sent_id = "):
                sent_id = line[len("# sent_id = ") :]
            elif line.startswith("# text = "):
                text = line[len("# text = ") :]
        else:
            cols = line.split("\t")
            if len(cols) != 10:
                fields(path, lineno, line, 10)  # raises with the standard message
            word_id = cols[0]
            if "-" in word_id or "." in word_id:
                continue
            if not word_id.isdigit():
                raise bad_line(
                    path, lineno, f"word id {word_id!r} is not a number, range or empty node"
                )
            if cols[3] not in _UPOS:
                raise bad_line(path, lineno, f"unknown UPOS tag {cols[3]!r}")
            tokens.append(cols[1])
            tags.append(cols[3])
    if sent_id is not None or tokens:
        flush()
    return build(columns, _FEATURES)


def _from_hub(ds: datasets.Dataset) -> datasets.Dataset:
    """A hub UD split with local columns: ``idx`` -> ``id``, ``upos`` ids -> tags, multiword tokens
    (``_``) dropped."""
    names = getattr(getattr(ds.features["upos"], "feature", None), "names", None)
    rows = ds.select_columns(["idx", "text", "tokens", "upos"]).to_dict()
    columns: dict[str, list] = {
        "id": [str(i) for i in rows["idx"]],
        "text": list(rows["text"]),
        "tokens": [],
        "upos": [],
    }
    for tokens, tags in zip(rows["tokens"], rows["upos"]):
        tags = [names[t] if names and isinstance(t, int) else t for t in tags]
        kept = [(tok, tag) for tok, tag in zip(tokens, tags) if tag in _UPOS]
        columns["tokens"].append([tok for tok, _ in kept])
        columns["upos"].append([tag for _, tag in kept])
    return build(columns, _FEATURES)


def load_ud(
    treebank: str, split: str | None = None, data_dir: PathLike | None = None
) -> datasets.Dataset | DatasetDict:
    """One split of a UD treebank (Nivre et al. 2020, LREC), or all of its splits as a
    ``DatasetDict``.

    Treebanks: ``en_ewt`` (Silveira et al. 2014; train 12,544 / validation 2,001 / test 2,077
    sentences), ``es_gsd``, ``de_gsd``, ``fr_gsd`` (McDonald et al. 2013), ``ja_gsd`` (Tanaka
    et al. 2016) with validation and test only offline, and the parallel ``en_pud``, ``de_pud``,
    ``es_pud``, ``fr_pud`` (Zeman et al. 2017; 1,000 test sentences each, same order).
    ``split=None`` gives the splits in the shared data. Hub fallback:
    ``universal-dependencies/universal_dependencies`` (UD 2.7, parquet branch).
    """
    check_name("treebank", treebank, TREEBANKS)
    if split is not None:
        split = "validation" if split == "dev" else split
        check_name("split", split, treebank_splits(treebank), of=treebank)
    wanted = [split] if split is not None else treebank_splits(treebank, offline=True)
    files = [treebank_file(treebank, s) for s in wanted]
    paths = locate(files, data_dir)
    if paths is None:
        offline = treebank_splits(treebank, offline=True)
        hint = f"The shared data holds {TREEBANKS[treebank]} splits {', '.join(offline)}"
        if split is not None and split not in offline:
            hint += (
                f"; its {split} split is not available offline (files of 4 MiB or more "
                "are missing, see the data README): for zero-shot transfer train on en_ewt"
            )
        raw = fetch(
            f"UD treebank {treebank}" + (f" split {split}" if split else ""),
            files,
            ud_hub(treebank),
            data_dir,
            hint=hint + ".",
        )
        parts = {s: _from_hub(raw[s]) for s in ([split] if split is not None else list(raw))}
    else:
        parts = {s: _read_conllu(p) for s, p in zip(wanted, paths)}
    return parts[split] if split is not None else DatasetDict(parts)


@memoised
def _read_parallel(path: Path) -> datasets.Dataset:
    lines = read_lines(path)
    check_header(path, lines, "\t".join(("sent_id",) + PARALLEL_LANGS))
    columns: dict[str, list[str]] = {key: [] for key in ("id",) + PARALLEL_LANGS}
    for lineno, line in enumerate(lines[1:], start=2):
        for key, value in zip(columns, fields(path, lineno, line, 1 + len(PARALLEL_LANGS))):
            columns[key].append(value)
    return build(columns, Features({key: Value("string") for key in columns}))


def load_pud_parallel(data_dir: PathLike | None = None) -> datasets.Dataset:
    """The 1,000 PUD sentences aligned across languages (Zeman et al. 2017, CoNLL shared task).

    Columns ``id`` (the shared ``sent_id``, e.g. ``n01001011``) and ``en``, ``de``, ``es``, ``fr``
    (each the ``# text`` of that sentence in that language's PUD treebank). For parallel retrieval
    and cross-lingual alignment demos. Local only (a derived file).
    """
    paths = locate([PARALLEL_FILE], data_dir)
    if paths is None:
        fetch(
            "the PUD parallel sentences", [PARALLEL_FILE], PARALLEL_HUB, data_dir
        )  # raises: no hub copy
    return _read_parallel(paths[0])
