"""Word-embedding evaluation sets: the Google analogy questions and three word-similarity sets.

All of them are local only. The analogy file is the shared 80% of ``questions-words.txt``; the other
20% is held out, and every public copy (gensim's test data, hub mirrors) contains it, so there is
deliberately no hub fallback that would mix the hold-out into the course's numbers.
"""

from __future__ import annotations

from pathlib import Path

import datasets
from datasets import Features, Value

from ._hub import HubSource, fetch
from ._paths import PathLike, check_name, locate
from ._read import bad_line, build, check_header, fields, memoised, read_lines

ANALOGY_FILE = "word_embedding_eval/google_analogy/questions-words.shared80.txt"
ANALOGY_HUB = HubSource(
    None, note="public copies hold the full file, including this course's 20% hold-out"
)
SIMILARITY_HUB = HubSource(None, note="no well-known hub copy of this release")

# (name, form, split) -> (file, header, columns of word1/word2/score, separator (None: spaces),
#                          fields per line)
_SIMILARITY: dict[tuple[str, str, str], tuple[str, str, tuple[int, int, int], str | None, int]] = {
    ("wordsim353", "natural", "full"): (
        "word_embedding_eval/wordsim353/combined.tab",
        "Word 1\tWord 2\tHuman (mean)",
        (0, 1, 2),
        "\t",
        3,
    ),
    ("simlex999", "natural", "full"): (
        "word_embedding_eval/SimLex-999/SimLex-999.txt",
        (
            "word1\tword2\tPOS\tSimLex999\tconc(w1)\tconc(w2)\t"
            "concQ\tAssoc(USF)\tSimAssoc333\tSD(SimLex)"
        ),
        (0, 1, 3),
        "\t",
        10,
    ),
    ("men", "natural", "full"): (
        "word_embedding_eval/MEN/MEN_dataset_natural_form_full",
        "word1 word2 score",
        (0, 1, 2),
        None,
        3,
    ),
    ("men", "lemma", "full"): (
        "word_embedding_eval/MEN/MEN_dataset_lemma_form_full",
        "word1 word2 score",
        (0, 1, 2),
        None,
        3,
    ),
    ("men", "lemma", "dev"): (
        "word_embedding_eval/MEN/MEN_dataset_lemma_form.dev",
        "word1 word2 score",
        (0, 1, 2),
        None,
        3,
    ),
    ("men", "lemma", "test"): (
        "word_embedding_eval/MEN/MEN_dataset_lemma_form.test",
        "word1 word2 score",
        (0, 1, 2),
        None,
        3,
    ),
}
SIMILARITY_SETS: tuple[str, ...] = ("wordsim353", "simlex999", "men")
_TITLES = {"wordsim353": "WordSim-353", "simlex999": "SimLex-999", "men": "MEN"}
_PAIR_FEATURES = Features(
    {"word1": Value("string"), "word2": Value("string"), "score": Value("float64")}
)


@memoised
def _read_analogy(path: Path) -> datasets.Dataset:
    columns: dict[str, list[str]] = {"section": [], "a": [], "b": [], "c": [], "d": []}
    section = None
    for lineno, line in enumerate(read_lines(path), start=1):
        if line.startswith(":"):
            section = line[1:].strip()
            continue
        if section is None:
            raise bad_line(path, lineno, "a question before the first ': section' line")
        words = fields(path, lineno, line, 4, sep=None)
        columns["section"].append(section)
        for key, word in zip("abcd", words):
            columns[key].append(word)
    return build(columns, Features({key: Value("string") for key in columns}))


@memoised
def _read_pairs(
    path: Path, header: str, cols: tuple[int, int, int], sep: str | None, n: int
) -> datasets.Dataset:
    lines = read_lines(path)
    check_header(path, lines, header)
    columns: dict[str, list] = {"word1": [], "word2": [], "score": []}
    for lineno, line in enumerate(lines[1:], start=2):
        parts = fields(path, lineno, line, n, sep=sep)
        try:
            score = float(parts[cols[2]])
        except ValueError:
            raise bad_line(path, lineno, f"score {parts[cols[2]]!r} is not a number") from None
        columns["word1"].append(parts[cols[0]])
        columns["word2"].append(parts[cols[1]])
        columns["score"].append(score)
    return build(columns, _PAIR_FEATURES)


def load_analogy(data_dir: PathLike | None = None) -> datasets.Dataset:
    """Google word-analogy questions (Mikolov et al. 2013, arXiv:1301.3781): 15,638 questions in
    14 sections.

    One row per question ``a : b :: c : d`` with columns ``section`` (e.g.
    ``capital-common-countries``, ``gram1-adjective-to-adverb``), ``a``, ``b``, ``c``, ``d``, in the
    file's order. This is the shared 80% of each section; the rest is held out for grading. Local
    only.
    """
    paths = locate([ANALOGY_FILE], data_dir)
    if paths is None:
        fetch(
            "the Google analogy questions", [ANALOGY_FILE], ANALOGY_HUB, data_dir
        )  # raises: no hub copy
    return _read_analogy(paths[0])


def load_word_similarity(
    name: str, split: str = "full", form: str | None = None, data_dir: PathLike | None = None
) -> datasets.Dataset:
    """A word-similarity set, columns ``word1``, ``word2``, ``score`` (human rating, float), header
    removed.

    - ``wordsim353``: WordSim-353 (Finkelstein et al. 2002, ACM TOIS), 353 pairs, scores 0-10.
    - ``simlex999``: SimLex-999 (Hill, Reichart & Korhonen 2015, Comp. Ling.), 999 pairs,
      ``SimLex999`` 0-10.
    - ``men``: MEN (Bruni, Tran & Baroni 2014, JAIR), 3,000 pairs, scores 0-50. ``form="natural"``
      (default for ``split="full"``) gives plain words; ``form="lemma"`` words with ``-n/-v/-j``
      suffixes. The official ``split="dev"`` (2,000) / ``"test"`` (1,000) exist only in lemma form.
    Local only.
    """
    check_name("word-similarity set", name, SIMILARITY_SETS)
    splits = sorted({s for (n, _, s) in _SIMILARITY if n == name})
    check_name("split", split, splits, of=name)
    forms = [f for (n, f, s) in _SIMILARITY if n == name and s == split]
    form = form or ("natural" if "natural" in forms else forms[0])
    check_name("form", form, forms, of=f"{name} split {split!r}")
    rel, header, cols, sep, n = _SIMILARITY[(name, form, split)]
    paths = locate([rel], data_dir)
    if paths is None:
        fetch(_TITLES[name], [rel], SIMILARITY_HUB, data_dir)  # raises: no hub copy
    return _read_pairs(paths[0], header, cols, sep, n)
