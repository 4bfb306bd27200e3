"""Where data lives: the data directory, the download cache, the errors, and the integrity check.

Resolution order for every dataset (CONVENTIONS.md, "Data and models"), implemented by
:func:`locate` for the local steps and by :mod:`._hub` for the rest:

1. the data directory (``data_dir=`` argument, else :func:`set_data_dir`, else ``$TLCOURSE_DATA``);
2. the course data bundle (:mod:`.bundle`): the download cache ``$TLCOURSE_DATA_CACHE`` (extracted
   archives), else a download from ``$TLCOURSE_DATA_URL`` (default: the repository's release
   assets), hash-checked against the committed registry, then extracted into the cache;
3. the Hugging Face hub, only where its copy is the same data (loaders without one say why);
4. a :class:`DataNotFoundError` (:class:`DataDownloadError` when a download failed) that says what
   was tried and what to set.

Every local file (data directory or cache) is checked against the sha256 of its folder's
``SOURCE.md`` (kept in :mod:`._checksums`) once per process, so that a truncated copy fails loudly
instead of training on half a dataset.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable

from ._checksums import CHECKSUMS, ORIGINS

ENV_DATA = "TLCOURSE_DATA"
ENV_CACHE = "TLCOURSE_CACHE"
OFFLINE_ENVS: tuple[str, ...] = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
FIX_HINT = (
    f"export {ENV_DATA}=/path/to/shared/data (the folder holding sst2/, ud_treebanks/, ...), "
    "or call tlcourse.data.set_data_dir('/path/to/shared/data')"
)

PathLike = str | os.PathLike


class DataNotFoundError(FileNotFoundError):
    """No local copy and no reachable hub copy; the message says what was searched and what to
    set."""


class DataCorruptError(ValueError):
    """A local file whose size or sha256 differs from its ``SOURCE.md`` entry (truncated or
    edited)."""


class DataFormatError(DataCorruptError):
    """A local file that does not parse (wrong column count, unknown label); names the file and
    line."""


class DataDownloadError(DataNotFoundError):
    """Not found locally, and the course data bundle could not be downloaded (offline, server
    down); the message names the URL, the cache directory and the fixes."""


class DownloadCorruptError(DataCorruptError):
    """A bundle archive whose sha256 differs from the registry even after one retry."""


class UnknownDataError(ValueError):
    """An unknown dataset, split, domain or part name; the message lists the valid ones."""


def check_name(kind: str, name: str, valid: Iterable[str], of: str = "") -> None:
    """Raise :class:`UnknownDataError` listing the valid names unless ``name`` is one of them."""
    valid = list(valid)
    if name not in valid:
        where = f" for {of}" if of else ""
        raise UnknownDataError(
            f"Unknown {kind} {name!r}{where}. Valid choices: {', '.join(map(str, valid))}."
        )


_override: Path | None = None


def set_data_dir(path: PathLike | None) -> None:
    """Use ``path`` as the data directory for this process (overrides ``$TLCOURSE_DATA``; ``None``
    undoes)."""
    global _override
    _override = None if path is None else Path(path).expanduser().absolute()


def data_dir() -> Path | None:
    """The data directory in force: :func:`set_data_dir`'s, else ``$TLCOURSE_DATA``, else ``None``.

    The path is returned even if it does not exist; :func:`describe_data_dir` says whether it does.
    """
    if _override is not None:
        return _override
    env = os.environ.get(ENV_DATA, "").strip()
    return Path(env).expanduser().absolute() if env else None


def cache_dir() -> Path:
    """``$TLCOURSE_CACHE``, default ``~/.cache/tlcourse``: the one place tlcourse writes to (not
    created here)."""
    env = os.environ.get(ENV_CACHE, "").strip()
    return Path(env).expanduser().absolute() if env else Path.home() / ".cache" / "tlcourse"


def hub_offline() -> str | None:
    """The offline switch that is on (``"HF_HUB_OFFLINE=1"``), or ``None`` when the hub may be
    tried."""
    for name in OFFLINE_ENVS:
        value = os.environ.get(name, "").strip()
        if value.lower() in {"1", "true", "yes", "on"}:
            return f"{name}={value}"
    return None


def resolve_root(arg: PathLike | None = None) -> tuple[Path | None, str]:
    """The data directory for one call and where it came from (``data_dir=``, set_data_dir(),
    TLCOURSE_DATA)."""
    if arg is not None:
        return Path(arg).expanduser().absolute(), "data_dir= argument"
    return data_dir(), ("set_data_dir()" if _override is not None else ENV_DATA)


def describe_data_dir() -> str:
    """One line for :func:`tlcourse.setup`'s printout: the data directory, or where data will be
    downloaded from and to."""
    from . import bundle  # late: bundle imports this module

    root = data_dir()
    downloads = f"downloads to {bundle.download_cache()} from {bundle.bundle_url()}"
    offline = hub_offline()
    downloads += f" (hub offline: {offline})" if offline else ""
    if root is None:
        return f"not set ({ENV_DATA}); {downloads}"
    if root.is_dir():
        return f"{root} (found)"
    return f"{root} (missing: not a directory); {downloads}"


def describe_root(root: Path | None, origin: str, missing: list[str]) -> str:
    """Why the data directory did not serve a request (for :class:`DataNotFoundError` messages)."""
    if root is None:
        return f"data directory: not set ({ENV_DATA} is unset and set_data_dir() was not called)"
    if not root.is_dir():
        return f"data directory: {root} (from {origin}) does not exist"
    return f"data directory: {root} (from {origin}) lacks {', '.join(missing)}"


_verified: dict[tuple[str, int, int], str] = {}


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_key(path: Path) -> tuple[str, int, int]:
    """(resolved path, size, mtime): what identifies one version of a file within a process."""
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def verified(root: Path, rel: str, key: str | None = None) -> Path:
    """``root / rel`` after checking its size and sha256 against :data:`CHECKSUMS` (hashed once per
    process).

    Raises :class:`DataCorruptError` naming the file, the expected and actual sha256, and where to
    re-copy it from. A file that has no entry (e.g. a treebank split a user added) is returned
    unchecked.
    """
    path = root / rel
    rel = key or rel  # a hub mirror's file is checked against the data folder's entry it stands for
    expected = CHECKSUMS.get(rel)
    if expected is None:
        return path
    key = file_key(path)
    if _verified.get(key) == expected[1]:
        return path
    got = sha256_of(path)
    if key[1] != expected[0] or got != expected[1]:
        folder = rel.split("/", 1)[0]
        raise DataCorruptError(
            f"{path} is corrupt: expected sha256 {expected[1]} ({expected[0]:,} bytes), "
            f"got sha256 {got} ({key[1]:,} bytes). The file is truncated or modified: "
            f"re-copy the file from the course's shared data folder ({rel}), "
            f"or from its source {ORIGINS.get(folder, '(see SOURCE.md)')}; see {folder}/SOURCE.md."
        )
    _verified[key] = got
    return path


def locate(files: list[str], arg: PathLike | None = None) -> list[Path] | None:
    """The verified local paths of ``files`` (relative to the data directory): from the data
    directory when it has them all, else from the course data bundle's download cache (downloaded
    and extracted first when absent); ``None`` when neither can serve them (the caller then tries
    the hub, whose error message includes why the download failed)."""
    root, _ = resolve_root(arg)
    if root is not None and all((root / rel).is_file() for rel in files):
        return [verified(root, rel) for rel in files]
    from .bundle import locate_cached  # late: bundle imports this module

    return locate_cached(files)


def missing_files(files: list[str], arg: PathLike | None = None) -> list[str]:
    """Which of ``files`` the data directory lacks (all of them when it is unset or absent)."""
    root, _ = resolve_root(arg)
    if root is None or not root.is_dir():
        return list(files)
    return [rel for rel in files if not (root / rel).is_file()]
