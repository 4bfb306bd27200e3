"""The course data bundle: the shared data folder as versioned, hash-checked downloads.

Students on Colab or their own machine have no ``TLCOURSE_DATA`` folder. The bundle is one
reproducible ``<folder>.tar.gz`` per top-level folder of the shared data (``sst2``,
``ud_treebanks``, ``pretrain_corpus``, ...), so a chapter downloads only what it reads. The sha256
of every archive is in ``registry.txt`` beside this module (pooch's registry format,
``name sha256``); :func:`build_bundle` rebuilds the same bytes from the same data.

Settings (CONVENTIONS.md, "Data and models"; the second step of the resolution order in
:mod:`._paths`):

* ``TLCOURSE_DATA_URL``: where the archives are (default :data:`DATA_BUNDLE_URL`, the release
  assets of the course repository for tag :data:`DATA_BUNDLE_TAG`);
* ``TLCOURSE_DATA_CACHE``: where they are extracted, laid out like the shared data folder
  (default ``pooch.os_cache("tlcourse") / "data"``).

Command line: ``python -m tlcourse.data.bundle build DATA OUT`` (``make data-bundle``) and
``python -m tlcourse.data.bundle serve OUT --port 0 --port-file F`` (a local server for CI).
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import sys
import tarfile
import tempfile
from functools import lru_cache
from pathlib import Path

from .._release import REPOSITORY_URL
from ._checksums import CHECKSUMS
from ._paths import (
    FIX_HINT,
    DataCorruptError,
    DataDownloadError,
    DownloadCorruptError,
    PathLike,
    check_name,
    sha256_of,
    verified,
)

# The course repository is set in one place, tlcourse/_release.py (as _config.yml's repository.url).
# Bump the tag whenever an archive changes: a release's assets are never replaced in place.
DATA_BUNDLE_TAG = "data-v1"
DATA_BUNDLE_URL = f"{REPOSITORY_URL}/releases/download/{DATA_BUNDLE_TAG}/"
ENV_URL = "TLCOURSE_DATA_URL"
ENV_DATA_CACHE = "TLCOURSE_DATA_CACHE"
REGISTRY_FILE = Path(__file__).with_name("registry.txt")
SUFFIX = ".tar.gz"


# --- settings -------------------------------------------------------------------------------


def bundle_url() -> str:
    """``$TLCOURSE_DATA_URL`` (with a trailing ``/``), else :data:`DATA_BUNDLE_URL`."""
    url = os.environ.get(ENV_URL, "").strip() or DATA_BUNDLE_URL
    return url if url.endswith("/") else url + "/"


def download_cache() -> Path:
    """``$TLCOURSE_DATA_CACHE``, else ``<user cache>/tlcourse/data`` (not created here)."""
    env = os.environ.get(ENV_DATA_CACHE, "").strip()
    if env:
        return Path(env).expanduser().absolute()
    import pooch  # imported late: only the download path needs it

    return Path(pooch.os_cache("tlcourse")) / "data"


def read_registry(path: PathLike = REGISTRY_FILE) -> dict[str, str]:
    """``{archive file name: sha256}`` from a registry file (``#`` comments and blanks skipped)."""
    entries: dict[str, str] = {}
    path = Path(path)
    for line in path.read_text().splitlines() if path.is_file() else []:
        if line.strip() and not line.lstrip().startswith("#"):
            name, digest = line.split()
            entries[name] = digest
    return entries


@lru_cache(maxsize=1)
def registry() -> dict[str, str]:
    """The committed registry (read once per process)."""
    return read_registry()


def bundled() -> list[str]:
    """The dataset folders the bundle has (archive names without ``.tar.gz``)."""
    return sorted(name[: -len(SUFFIX)] for name in registry())


def folder_of(rel: str) -> str:
    """The archive (top-level folder) that holds a path relative to the data directory."""
    return rel.split("/", 1)[0]


# --- building -------------------------------------------------------------------------------


def build_archive(folder: Path, out: Path) -> str:
    """Write ``folder`` (a top-level data folder) as ``out``, a reproducible ``.tar.gz``; its
    sha256.

    Same input, same bytes: entries sorted, regular files only, mtime 0, uid/gid 0, mode 0644,
    and the gzip header without file name or time. (The bytes can differ across zlib versions;
    the registry is built with the CPython zlib of ``ci/constraints.txt``'s environment.)
    """
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    with (
        open(out, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz,
    ):
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path in files:
                info = tarfile.TarInfo(f"{folder.name}/{path.relative_to(folder).as_posix()}")
                info.size, info.mtime, info.mode = path.stat().st_size, 0, 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)
    return sha256_of(out)


def build_bundle(
    data_dir: PathLike, out_dir: PathLike, only: list[str] | None = None
) -> dict[str, str]:
    """Archive every top-level folder of ``data_dir`` (or ``only`` those) into ``out_dir``, and
    write ``out_dir/registry.txt``; returns ``{archive name: sha256}``."""
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    folders = sorted(p.name for p in data_dir.iterdir() if p.is_dir())
    for name in only or []:
        check_name("dataset folder", name, folders, of=str(data_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    built = {
        name + SUFFIX: build_archive(data_dir / name, out_dir / (name + SUFFIX))
        for name in (only or folders)
    }
    lines = [
        f"# tlcourse data bundle {DATA_BUNDLE_TAG}: archive sha256 (python -m tlcourse.data.bundle)"
    ] + [f"{name} {digest}" for name, digest in sorted(built.items())]
    (out_dir / "registry.txt").write_text("\n".join(lines) + "\n")
    return built


# --- downloading ----------------------------------------------------------------------------


def _progressbar() -> bool:
    # Progress bars are for people at a terminal or in a notebook; CI and the book set TQDM_DISABLE.
    return os.environ.get("TQDM_DISABLE", "").strip().lower() not in {"1", "true", "yes", "on"}


def _retrieve(archive: str, url: str, cache: Path) -> Path:
    """One hash-checked download of ``archive`` into ``cache/.archives`` (pooch.retrieve), with a
    tqdm bar named after the archive unless ``TQDM_DISABLE`` is set."""
    import pooch
    from tqdm.auto import tqdm

    # Our own bar, not progressbar=True: tqdm reads TQDM_DISABLE once, at import, and pooch's bar
    # has no name; this one reads it at each download and says which archive is coming.
    # (total=1 until pooch sets the real size: pooch tests the bar's truth, which needs a total.)
    bar = None
    if _progressbar():
        bar = tqdm(desc=archive, total=1, unit="B", unit_scale=True, disable=False)
    # pooch logs "Downloading data from <url> to file <path>" to stderr: the bar already says what
    # comes, and in the built book (stderr is shown) the line would be noise with a CI path.
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel("WARNING")
    try:
        path = pooch.retrieve(
            url,
            known_hash=f"sha256:{registry()[archive]}",
            fname=archive,
            path=cache / ".archives",
            downloader=pooch.HTTPDownloader(progressbar=False if bar is None else bar),
        )
    finally:
        logger.setLevel(level)
        if bar is not None:
            bar.close()
    return Path(path)


def _extract(archive_path: Path, name: str, cache: Path) -> Path:
    """Unpack into a staging folder, then rename into place: a half-extracted folder never
    counts as cached (the folder's existence is the cache's "done" mark)."""
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=cache))
    try:
        with tarfile.open(archive_path, "r:gz") as tar:
            bad = [m.name for m in tar.getmembers() if folder_of(m.name) != name or not m.isfile()]
            if bad:
                raise DownloadCorruptError(f"{archive_path} has unexpected entries: {bad[:3]}")
            if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4
                tar.extractall(staging, filter="data")
            else:
                tar.extractall(staging)  # entries were checked above: plain files under name/
        target = cache / name
        if target.exists():  # another process finished first
            return target
        os.replace(staging / name, target)
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def fetch(name: str) -> Path:
    """The extracted folder ``name`` in the download cache, downloaded first when absent.

    Raises :class:`DataDownloadError` (unreachable URL: names the URL, the cache and the fix) or
    :class:`DownloadCorruptError` (sha256 mismatch twice: the file and the URL).
    """
    check_name("dataset", name, bundled(), of="the course data bundle")
    cache = download_cache()
    target = cache / name
    if target.is_dir():
        return target
    archive = name + SUFFIX
    url = bundle_url() + archive
    import requests

    for attempt in (1, 2):  # a mismatch may be a broken transfer: delete, retry once
        try:
            path = _retrieve(archive, url, cache)
            break
        except ValueError as exc:  # pooch: "SHA256 hash of downloaded file ... does not match"
            (cache / ".archives" / archive).unlink(missing_ok=True)
            if attempt == 2:
                raise DownloadCorruptError(
                    f"The download of {archive} from {url} is corrupt (sha256 differs from the "
                    f"course's registry, twice). {str(exc).splitlines()[0]} "
                    f"Try again later, or {FIX_HINT}."
                ) from None
        except (requests.exceptions.RequestException, OSError) as exc:
            raise DataDownloadError(unreachable(name, exc)) from None
    try:
        target = _extract(path, name, cache)
    except FileNotFoundError:  # another process (a chapter run beside this one) extracted it
        if target.is_dir():  # and removed the archive between our download and our extraction
            return target
        raise
    path.unlink(missing_ok=True)  # the extracted folder is the cache; keep one copy on disk
    return target


def unreachable(name: str, exc: BaseException) -> str:
    """The message of a failed download: what, from where, into where, why, and the fixes."""
    return (
        f"Cannot download the course data {name!r} from {bundle_url()}{name}{SUFFIX} into "
        f"{download_cache()} ({type(exc).__name__}: {str(exc)[:200]}). Go online and retry "
        f"(`tlcourse download {name}` fetches it ahead of time), set {ENV_URL} to a mirror, or "
        f"{FIX_HINT}."
    )


_failures: dict[str, str] = {}  # dataset folder -> why its download failed (for the error text)


def failure(files: list[str]) -> str | None:
    """Why the bundle could not serve ``files`` in this process (``None``: it was not tried)."""
    reasons = [_failures[n] for n in sorted({folder_of(rel) for rel in files}) if n in _failures]
    return " ".join(reasons) or None


def locate_cached(files: list[str]) -> list[Path] | None:
    """The verified paths of ``files`` in the download cache, downloading their archives when
    they are absent; ``None`` when the bundle cannot serve them (the reason kept for
    :func:`failure`)."""
    folders = sorted({folder_of(rel) for rel in files})
    if not all(rel in CHECKSUMS and folder_of(rel) + SUFFIX in registry() for rel in files):
        return None  # not a file of the shared data (e.g. a GSD train split): nothing to download
    try:
        roots = {folder: fetch(folder) for folder in folders}
    except DataDownloadError as err:
        for folder in folders:
            _failures[folder] = str(err)
        return None
    for folder in folders:
        _failures.pop(folder, None)
    cache = download_cache()
    try:
        return [verified(cache, rel) for rel in files]
    except (DataCorruptError, FileNotFoundError):  # edited or deleted in the cache: fetch again
        for folder in roots:
            shutil.rmtree(cache / folder, ignore_errors=True)
            fetch(folder)
        return [verified(cache, rel) for rel in files]


def download(names: list[str] | None = None) -> dict[str, Path]:
    """Fetch all dataset folders of the bundle (or ``names`` of them) ahead of time, e.g. before
    going offline; returns ``{name: extracted folder}``. Unknown names raise
    :class:`UnknownDataError` before anything is downloaded."""
    which = bundled() if not names else list(names)
    for name in which:
        check_name("dataset", name, bundled(), of="the course data bundle")
    return {name: fetch(name) for name in which}


# --- command line ---------------------------------------------------------------------------


def serve(directory: PathLike, port: int = 0, port_file: PathLike | None = None) -> None:
    """Serve ``directory`` over HTTP on 127.0.0.1 until interrupted (``port=0``: a free port,
    printed and written to ``port_file``): a stand-in for the release assets in CI."""
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # one line per request is noise in CI logs
            pass

    handler = partial(Quiet, directory=str(directory))
    with ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        bound = server.server_address[1]
        if port_file:
            Path(port_file).write_text(f"{bound}\n")
        print(f"serving {directory} on http://127.0.0.1:{bound}/", flush=True)
        server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tlcourse.data.bundle", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write one .tar.gz per data folder and registry.txt")
    b.add_argument("data_dir", type=Path)
    b.add_argument("out_dir", type=Path)
    b.add_argument("--only", nargs="+", metavar="FOLDER", help="these folders only")
    b.add_argument(
        "--check", action="store_true", help="fail if an archive differs from the registry (CI)"
    )
    s = sub.add_parser("serve", help="serve a built bundle on 127.0.0.1")
    s.add_argument("directory", type=Path)
    s.add_argument("--port", type=int, default=0, help="0: any free port (default)")
    s.add_argument("--port-file", type=Path, help="write the port here once listening")
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.directory, args.port, args.port_file)
        return 0
    built = build_bundle(args.data_dir, args.out_dir, args.only)
    for name, digest in built.items():
        size = (args.out_dir / name).stat().st_size
        print(f"{args.out_dir / name}: {size / 1e6:.1f} MB sha256 {digest}")
    stale = {k: v for k, v in built.items() if registry().get(k) != v}
    if stale:
        print(
            f"{'error' if args.check else 'note'}: {', '.join(stale)} differ from "
            f"{REGISTRY_FILE}: copy {args.out_dir / 'registry.txt'} there and bump "
            "DATA_BUNDLE_TAG before a release",
            file=sys.stderr,
        )
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
