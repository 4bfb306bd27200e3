"""Tests of the course data bundle (tlcourse.data.bundle): reproducible archives that agree with the
committed registry, and the download path of every loader, end to end against a local HTTP server
on 127.0.0.1 (the network guard stays on) serving archives built from the shared data folder.

The server can alter the bytes it sends (a corrupt download), count requests (a warm cache makes
none) and stop (offline). Fast tests build only small folders; one test builds them all, twice.
"""

from __future__ import annotations

import gzip
import os
import socket
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from tlcourse import cli, data
from tlcourse.data import (
    DataCorruptError,
    DataDownloadError,
    DataNotFoundError,
    DownloadCorruptError,
    UnknownDataError,
    bundle,
)

REPO = Path(__file__).resolve().parents[1]
env_data = os.environ.get("TLCOURSE_DATA", "").strip()
SHARED = Path(env_data) if env_data else REPO.parent / "shared" / "data"
needs_data = pytest.mark.skipif(
    not (SHARED / "README.md").is_file(), reason=f"shared data folder not found at {SHARED}"
)
SMALL = ["glue_rte", "omniglot", "sentiment_labelled_sentences"]


class Server:
    """Serves ``files`` (name -> bytes) on 127.0.0.1 in a thread; ``corrupt`` names are sent with
    one byte flipped (the first ``corrupt[name]`` times), and ``requests`` counts GETs per name."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.corrupt, self.requests = files, {}, {}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.lstrip("/")
                owner.requests[name] = owner.requests.get(name, 0) + 1
                body = owner.files.get(name)
                if body is None:
                    self.send_error(404)
                    return
                if owner.corrupt.get(name, 0) > 0:
                    owner.corrupt[name] -= 1
                    body = body[:100] + bytes([body[100] ^ 0xFF]) + body[101:]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, bytes]:
    if not (SHARED / "README.md").is_file():
        pytest.skip(f"shared data folder not found at {SHARED}")
    out = tmp_path_factory.mktemp("bundle")
    bundle.build_bundle(SHARED, out, only=SMALL)
    return {p.name: p.read_bytes() for p in out.glob("*.tar.gz")}


@pytest.fixture
def server(built, monkeypatch, tmp_path):
    """A fresh download cache, no data directory, and the bundle URL pointing at a local server."""
    srv = Server(dict(built))
    monkeypatch.delenv("TLCOURSE_DATA", raising=False)
    monkeypatch.setenv("TLCOURSE_DATA_URL", srv.url)
    monkeypatch.setenv("TLCOURSE_DATA_CACHE", str(tmp_path / "dl"))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.setattr(bundle, "_failures", {})
    data.set_data_dir(None)
    yield srv
    srv.stop()
    data.set_data_dir(None)


def _same(a, b) -> bool:
    """Same splits, features and rows (the Arrow tables compare equal)."""
    if hasattr(a, "keys"):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return (
        a.features == b.features and a.num_rows == b.num_rows and a.data.table.equals(b.data.table)
    )


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed on exit: nothing listens there


# --- settings -------------------------------------------------------------------------------------


def test_url_agrees_with_config():
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    assert bundle.REPOSITORY_URL == config["repository"]["url"].rstrip("/")
    assert bundle.DATA_BUNDLE_URL == (
        f"{config['repository']['url'].rstrip('/')}/releases/download/{bundle.DATA_BUNDLE_TAG}/"
    )


def test_settings_from_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("TLCOURSE_DATA_URL", raising=False)
    monkeypatch.delenv("TLCOURSE_DATA_CACHE", raising=False)
    assert bundle.bundle_url() == bundle.DATA_BUNDLE_URL
    assert bundle.download_cache().name == "data" and "tlcourse" in str(bundle.download_cache())
    monkeypatch.setenv("TLCOURSE_DATA_URL", "http://mirror.example/d")  # a trailing / is added
    monkeypatch.setenv("TLCOURSE_DATA_CACHE", str(tmp_path))
    assert bundle.bundle_url() == "http://mirror.example/d/"
    assert bundle.download_cache() == tmp_path


def test_registry_covers_every_data_file():
    """Each checksummed file belongs to a bundled archive (its first path component)."""
    from tlcourse.data._checksums import CHECKSUMS

    assert {bundle.folder_of(rel) for rel in CHECKSUMS} == set(bundle.bundled())
    assert len(bundle.registry()) == 12 and all(len(d) == 64 for d in bundle.registry().values())


# --- building -------------------------------------------------------------------------------------


@needs_data
def test_full_bundle_matches_registry_and_is_reproducible(tmp_path):
    """The committed registry is the shared data's bundle; building twice gives the same bytes."""
    first = bundle.build_bundle(SHARED, tmp_path / "a")
    second = bundle.build_bundle(SHARED, tmp_path / "b")
    assert first == bundle.registry()
    assert first == second
    for name in first:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert bundle.read_registry(tmp_path / "a" / "registry.txt") == bundle.registry()


def test_archive_entries_are_normalised(built, tmp_path):
    raw = built["glue_rte.tar.gz"]
    assert raw[4:8] == b"\0\0\0\0"  # gzip header mtime 0
    path = tmp_path / "rte.tar.gz"
    path.write_bytes(raw)
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names) and "glue_rte/train.tsv" in names
    assert all(
        (m.mtime, m.uid, m.gid, m.mode, m.isfile()) == (0, 0, 0, 0o644, True) for m in members
    )
    assert gzip.decompress(raw)  # a valid gzip stream


# --- the download path ----------------------------------------------------------------------------


def test_download_then_load_equals_local(server, tmp_path):
    assert (
        str(tmp_path / "dl") in data.describe_data_dir() and server.url in data.describe_data_dir()
    )
    rte = data.load_rte()
    uci = data.load_uci_sentiment()
    assert server.requests == {"glue_rte.tar.gz": 1, "sentiment_labelled_sentences.tar.gz": 1}
    assert _same(rte, data.load_rte(data_dir=SHARED))
    assert _same(uci, data.load_uci_sentiment(data_dir=SHARED))
    assert (tmp_path / "dl" / "glue_rte" / "train.tsv").is_file()
    assert not list((tmp_path / "dl" / ".archives").iterdir())  # archive removed once extracted
    assert not any(p.name.startswith(".glue_rte") for p in (tmp_path / "dl").iterdir())
    data.load_rte()
    data.load_uci_sentiment(domain="imdb")
    assert sum(server.requests.values()) == 2  # cached: nothing downloaded again


def test_data_dir_comes_first(server, monkeypatch):
    monkeypatch.setenv("TLCOURSE_DATA", str(SHARED))
    assert data.load_rte()["train"].num_rows == 2490
    assert server.requests == {}


def test_progress_bar_unless_disabled(server, capsys, monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE")
    data.load_omniglot("one_shot_runs")
    assert "omniglot.tar.gz" in capsys.readouterr().err  # the bar, named after the archive
    monkeypatch.setenv("TQDM_DISABLE", "1")
    data.load_rte()
    assert "glue_rte.tar.gz:" not in capsys.readouterr().err


def test_corrupt_download_retried_once(server, tmp_path):
    server.corrupt["glue_rte.tar.gz"] = 1  # the first transfer is damaged, the second is fine
    assert data.load_rte()["validation"].num_rows == 277
    assert server.requests == {"glue_rte.tar.gz": 2}


def test_corrupt_download_twice_is_an_error(server, tmp_path):
    server.corrupt["glue_rte.tar.gz"] = 2
    with pytest.raises(DownloadCorruptError) as info:
        data.load_rte()
    message = str(info.value)
    assert f"{server.url}glue_rte.tar.gz" in message and "corrupt" in message
    assert isinstance(info.value, DataCorruptError)
    assert server.requests == {"glue_rte.tar.gz": 2}  # one retry, not more
    cache = tmp_path / "dl"
    assert not (cache / "glue_rte").exists() and not list((cache / ".archives").iterdir())
    assert data.load_rte()["train"].num_rows == 2490  # the server mends: the next call works


def test_edited_cache_file_is_downloaded_again(server, tmp_path):
    data.load_rte()
    target = tmp_path / "dl" / "glue_rte" / "dev.tsv"
    target.write_text(target.read_text()[:-50])  # truncated in the cache
    assert data.load_rte()["validation"].num_rows == 277
    assert server.requests == {"glue_rte.tar.gz": 2}


def test_server_down_is_a_clear_error(server, monkeypatch, tmp_path):
    url = f"http://127.0.0.1:{_dead_port()}/"
    monkeypatch.setenv("TLCOURSE_DATA_URL", url)
    with pytest.raises(DataDownloadError) as info:
        data.load_omniglot("one_shot_runs")  # no hub copy: the bundle was the last resort
    message = str(info.value)
    assert f"{url}omniglot.tar.gz" in message and str(tmp_path / "dl") in message
    assert "TLCOURSE_DATA" in message and "tlcourse download omniglot" in message
    assert isinstance(info.value, DataNotFoundError) and "Traceback" not in message
    with pytest.raises(DataDownloadError, match="Cannot download the course data 'glue_rte'"):
        data.download(["rte"])


def test_missing_archive_on_server(server):
    del server.files["glue_rte.tar.gz"]
    with pytest.raises(DataDownloadError, match=r"HTTPError: 404"):
        data.download(["glue_rte"])


def test_offline_with_warm_cache(server, monkeypatch):
    first = data.load_rte()
    server.stop()  # offline from here on
    monkeypatch.setenv("TLCOURSE_DATA_URL", f"http://127.0.0.1:{_dead_port()}/")
    assert _same(data.load_rte(), first)
    assert server.requests == {"glue_rte.tar.gz": 1}


def test_unknown_dataset(server):
    with pytest.raises(UnknownDataError, match="Valid choices: .*glue_rte.*rte"):
        data.download(["glue_rtee"])
    with pytest.raises(UnknownDataError, match="for the course data bundle"):
        bundle.fetch("nope")
    assert server.requests == {}


def test_download_ahead_and_cli(server, tmp_path, capsys):
    assert cli.main(["download", "rte", "omniglot"]) == 0
    out = capsys.readouterr().out
    assert f"glue_rte: {tmp_path / 'dl' / 'glue_rte'}" in out and "omniglot: " in out
    assert server.url in out
    assert cli.main(["download", "nope"]) == 2
    assert "Unknown dataset 'nope'" in capsys.readouterr().err
    assert sorted(server.requests) == ["glue_rte.tar.gz", "omniglot.tar.gz"]


def test_only_known_files_are_downloaded(server, tmp_path):
    """A file the shared data lacks (a GSD train split) downloads nothing; a known file deleted
    from the cache brings its folder back."""
    with pytest.raises(DataNotFoundError, match="not available offline"):
        data.load_ud("es_gsd", "train")
    assert server.requests == {}
    data.load_rte()
    (tmp_path / "dl" / "glue_rte" / "test.tsv").unlink()
    assert data.load_rte()["test"].num_rows == 3000
    assert server.requests == {"glue_rte.tar.gz": 2}


def test_quiet_when_progress_disabled(server, capfd):
    """With TQDM_DISABLE (CI, the built book) a download writes nothing: no bar, no pooch log."""
    data.load_rte()
    out, err = capfd.readouterr()
    assert server.requests == {"glue_rte.tar.gz": 1} and out == "" and err == ""
