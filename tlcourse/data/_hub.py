"""The third step of the resolution order: the Hugging Face hub, and the error when it fails too.

Each loader names a :class:`HubSource` (or says why there is no reliable hub copy). When neither the
data directory nor the course data bundle (:mod:`.bundle`) can serve a request, :func:`fetch` calls
:func:`datasets.load_dataset` with the cache under ``$TLCOURSE_CACHE/hf-datasets`` (nothing is
written elsewhere), unless ``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE`` is on; the loader then
normalises the hub's columns to its local ones.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import datasets

from ._paths import (
    FIX_HINT,
    DataCorruptError,
    DataDownloadError,
    DataNotFoundError,
    PathLike,
    cache_dir,
    describe_root,
    hub_offline,
    missing_files,
    resolve_root,
)


# Why most hub copies are not pinned to a commit: none could be checked against a public source.
NO_PUBLIC_COMMIT = "no commit id of this hub repository was found in public sources to pin"


@dataclass(frozen=True)
class HubSource:
    """Where a dataset lives on the Hugging Face hub (``repo`` None: no reliable copy, ``note`` says
    why). ``revision`` pins a commit (passed to ``load_dataset`` / ``hf_hub_download``); a copy
    without one says why in ``unpinned``."""

    repo: str | None
    config: str | None = None
    revision: str | None = None
    unpinned: str = ""
    data_dir: str | None = None
    note: str = ""
    # A mirror of the raw files (local relative path -> file in the hub dataset repo): they are
    # downloaded, checked against the same sha256 as local files, and parsed by the local reader.
    files: tuple[tuple[str, str], ...] = ()
    # The course's data as its loader returns it: rows per split and :func:`content_digest`. A
    # loaded hub copy is used only when it matches both (CONVENTIONS.md: "only where the hub copy
    # is the same data"); tests/test_bundle.py checks these against the shared data.
    rows: tuple[tuple[str, int], ...] = ()
    digest: str = ""

    def describe(self) -> str:
        """``repo (config ..., revision ...)``, or ``no reliable hub copy (why)``."""
        if self.repo is None:
            return f"no reliable hub copy ({self.note})"
        extra = [
            f"{key} {value}"
            for key, value in (
                ("config", self.config),
                ("revision", self.revision),
                ("data_dir", self.data_dir),
            )
            if value
        ]
        return self.repo + (f" ({', '.join(extra)})" if extra else "")


def fetch(
    title: str, files: list[str], hub: HubSource, data_dir: PathLike | None = None, hint: str = ""
) -> datasets.DatasetDict:
    """The raw hub copy of a dataset whose local ``files`` are missing, or a
    :class:`DataNotFoundError`.

    The error says which directory was searched (or that ``TLCOURSE_DATA`` is unset), which hub id
    was tried and why it failed (offline mode, unreachable, no copy), and what to set.
    """
    kwargs = {
        key: value
        for key, value in (("revision", hub.revision), ("data_dir", hub.data_dir))
        if value
    }
    return _attempt(
        title,
        files,
        hub,
        data_dir,
        hint,
        lambda: datasets.load_dataset(
            hub.repo, hub.config, cache_dir=str(cache_dir() / "hf-datasets"), **kwargs
        ),
    )


def fetch_files(
    title: str, files: list[str], hub: HubSource, data_dir: PathLike | None = None
) -> list[Path]:
    """Local paths of the hub mirror's copies of ``files`` (downloaded once, sha256-checked)."""
    from huggingface_hub import hf_hub_download

    from ._paths import verified

    mirror = dict(hub.files)

    def download() -> list[Path]:
        paths = []
        for rel in files:
            path = Path(
                hf_hub_download(
                    hub.repo,
                    mirror[rel],
                    repo_type="dataset",
                    revision=hub.revision,
                    cache_dir=str(cache_dir() / "hf-hub"),
                )
            )
            paths.append(verified(path.parent, path.name, key=rel))
        return paths

    return _attempt(title, files, hub, data_dir, "", download)


def _attempt(
    title: str,
    files: list[str],
    hub: HubSource,
    data_dir: PathLike | None,
    hint: str,
    action: Callable[[], Any],
) -> Any:
    root, origin = resolve_root(data_dir)
    local = describe_root(root, origin, missing_files(files, data_dir))
    offline = hub_offline()
    cause: Exception | None = None
    if hub.repo is None:
        hub_line = f"Hugging Face hub: {hub.describe()}"
    elif offline:
        hub_line = f"Hugging Face hub: {hub.describe()} not tried, offline mode is on ({offline})"
    else:
        try:
            return action()
        except DataCorruptError:
            raise  # a mirror whose bytes differ from the course's data: say so, do not hide it
        except Exception as exc:  # no network, no such repo, rate limit: all end in the same advice
            cause = exc
            hub_line = (
                f"Hugging Face hub: {hub.describe()} is unreachable or failed "
                f"({type(exc).__name__}: {str(exc)[:300]})"
            )
    fix = f"To fix: {FIX_HINT}"
    if hub.repo is not None and offline:
        fix += (
            "; or go online (unset HF_HUB_OFFLINE and HF_DATASETS_OFFLINE) to download the hub copy"
        )
    from .bundle import failure  # late: bundle imports _paths, which this module imports

    download = failure(files)
    lines = (
        [f"Cannot load {title}.", f"  {local}."]
        + ([f"  course data bundle: {download}"] if download else [])
        + [f"  {hub_line}."]
        + ([f"  {hint}"] if hint else [])
        + [fix + "."]
    )
    error = DataDownloadError if download else DataNotFoundError
    raise error("\n".join(lines)) from cause


def content_digest(ds: datasets.Dataset | datasets.DatasetDict) -> str:
    """sha256 over the rows (as sorted-key JSON) of a ``Dataset``, or of each split of a
    ``DatasetDict`` with its name: equal for the same rows in the same order."""
    digest = hashlib.sha256()
    parts = ds.items() if isinstance(ds, datasets.DatasetDict) else [("", ds)]
    for split, part in parts:
        digest.update(f"[{split}]\n".encode())
        for row in part.to_list():
            digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode() + b"\n")
    return digest.hexdigest()


def row_counts(ds: datasets.Dataset | datasets.DatasetDict) -> dict[str, int]:
    """``{split: rows}`` (``{"": rows}`` for a single ``Dataset``)."""
    if isinstance(ds, datasets.DatasetDict):
        return {split: part.num_rows for split, part in ds.items()}
    return {"": ds.num_rows}


def same_data(title: str, files: list[str], hub: HubSource, ds: Any) -> Any:
    """``ds``, a normalised hub copy, if it is the course's data (same rows per split, same
    :func:`content_digest`); otherwise a :class:`DataNotFoundError` saying that it is not used."""
    rows = row_counts(ds)
    if rows == dict(hub.rows) and content_digest(ds) == hub.digest:
        return ds
    from .bundle import failure  # late: bundle imports _paths, which this module imports

    download = failure(files)
    what = f"{rows} rows, expected {dict(hub.rows)}" if rows != dict(hub.rows) else "its content"
    error = DataDownloadError if download else DataNotFoundError
    raise error(
        "\n".join(
            [f"Cannot load {title}."]
            + ([f"  course data bundle: {download}"] if download else [])
            + [
                f"  Hugging Face hub: {hub.describe()} is not the course's data ({what} "
                "differs), so it is not used.",
                f"To fix: {FIX_HINT}.",
            ]
        )
    )


def conform(
    ds: datasets.Dataset, features: datasets.Features, rename: dict[str, str] | None = None
) -> datasets.Dataset:
    """A hub split with the local loader's columns: renamed, extra columns dropped, cast to
    ``features``."""
    for old, new in (rename or {}).items():
        if old in ds.column_names and old != new:
            ds = ds.rename_column(old, new)
    ds = ds.select_columns(list(features))
    return ds if ds.features == features else ds.cast(features)
