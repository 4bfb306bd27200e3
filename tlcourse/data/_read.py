"""Plain-text parsing helpers shared by the loaders, and the in-process cache of parsed datasets.

Files are split on ``"\\n"`` only: ``imdb_labelled.txt`` has U+0085 (NEL) inside sentences, which
:meth:`str.splitlines` would treat as a line break. A parse error names the file and the line.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Callable, Mapping, TypeVar

import datasets

from ._paths import DataFormatError, file_key

T = TypeVar("T")


def bad_line(path: Path, lineno: int, problem: str) -> DataFormatError:
    """The error for line ``lineno`` (1-based) of ``path``."""
    return DataFormatError(
        f"{path}, line {lineno}: {problem}. The file does not have the expected format; "
        "re-copy it from the course's shared data folder (see its SOURCE.md)."
    )


def read_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 file, split on ``\\n`` only, without the final newline or a CR of CRLF
    files."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        lineno = raw[: exc.start].count(b"\n") + 1
        raise bad_line(path, lineno, f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if "\r" in text:
        lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    return lines


def fields(path: Path, lineno: int, line: str, n: int, sep: str | None = "\t") -> list[str]:
    """``line`` split on ``sep`` (whitespace for ``None``), checked to have exactly ``n`` fields."""
    parts = line.split(sep)
    if len(parts) != n:
        kind = "tab-separated" if sep == "\t" else "space-separated"
        raise bad_line(
            path, lineno, f"expected {n} {kind} fields, got {len(parts)}: {line[:100]!r}"
        )
    return parts


def label_id(path: Path, lineno: int, value: str, labels: Mapping[str, int]) -> int:
    """The integer id of a label string, or a :class:`DataFormatError` listing the valid labels."""
    if value not in labels:
        raise bad_line(
            path, lineno, f"unknown label {value!r} (expected one of {', '.join(labels)})"
        )
    return labels[value]


def check_header(path: Path, lines: list[str], expected: str) -> None:
    """Fail unless the first line is ``expected``."""
    if not lines or lines[0] != expected:
        raise bad_line(
            path, 1, f"expected the header {expected!r}, got {(lines or [''])[0][:100]!r}"
        )


def memoised(parse: Callable[..., T]) -> Callable[..., T]:
    """Cache ``parse(paths, *args)`` by the files' (resolved path, size, mtime) and hand out copies.

    ``paths`` is a :class:`~pathlib.Path` or a tuple of them. The result is a ``Dataset`` (or a dict
    of them); callers get a deep copy, which shares the immutable Arrow table, so ``set_format`` on
    a returned dataset cannot change what the next caller gets.
    """

    @functools.lru_cache(maxsize=None)
    def cached(keys: tuple, paths: Path | tuple[Path, ...], args: tuple) -> T:
        return parse(paths, *args)

    @functools.wraps(parse)
    def wrapper(paths: Path | tuple[Path, ...], *args) -> T:
        group = paths if isinstance(paths, tuple) else (paths,)
        return copy.deepcopy(cached(tuple(file_key(p) for p in group), paths, args))

    wrapper.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
    return wrapper


def build(columns: dict[str, list], features: datasets.Features) -> datasets.Dataset:
    """An in-memory ``Dataset`` (``from_dict`` writes no cache files)."""
    return datasets.Dataset.from_dict(columns, features=features)


def lines_dataset(lines: list[str]) -> datasets.Dataset:
    """One row per line, column ``text``."""
    return build({"text": lines}, datasets.Features({"text": datasets.Value("string")}))
