"""The data root, file checksums, offline messages and downloads."""

from __future__ import annotations

import hashlib
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from polyskill.data import FILES, FileEntry, data_root, fetch
from polyskill.data.root import cache_dir
from polyskill.errors import DataError

NAME = "omniglot/splits/vinyals/val.txt"


def test_root_resolution_order(monkeypatch, tmp_path):
    monkeypatch.setenv("POLYSKILL_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "explicit") == tmp_path / "explicit"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("POLYSKILL_DATA")
    assert data_root() == Path("~/.cache/polyskill").expanduser()


def test_registry_matches_shared_checksums(data_root):
    listed = {}
    for line in (data_root / "SHA256SUMS").read_text().splitlines():
        digest, path = line.split()
        listed[path.removeprefix("./")] = digest
    for path, entry in FILES.items():
        assert listed[path] == entry.sha256, path


def test_verified_file_is_returned(data_root):
    assert fetch(NAME, data_root) == data_root / NAME


def test_truncated_copy_fails_with_both_digests(data_root, tmp_path):
    name = "omniglot/images_background.npz"
    target = tmp_path / name
    target.parent.mkdir(parents=True)
    content = (data_root / name).read_bytes()
    target.write_bytes(content[: len(content) // 2])
    actual = hashlib.sha256(content[: len(content) // 2]).hexdigest()
    with pytest.raises(DataError) as err:
        fetch(name, tmp_path)
    message = str(err.value)
    assert str(target) in message and FILES[name].sha256 in message and actual in message


def test_missing_file_says_where_and_how(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYSKILL_OFFLINE", "1")
    with pytest.raises(DataError) as err:
        fetch(NAME, tmp_path)
    message = str(err.value)
    assert "missing" in message and str(tmp_path / NAME) in message
    assert FILES[NAME].url in message and "POLYSKILL_OFFLINE" in message


def test_unknown_file_name():
    with pytest.raises(DataError, match="unknown data file"):
        fetch("omniglot/nothing.npz")


@pytest.fixture
def http_server(tmp_path):
    """A static file server on the loopback interface, serving tmp_path/served."""
    served = tmp_path / "served"
    served.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_then_verify(http_server, tmp_path, monkeypatch, data_root):
    served, base = http_server
    monkeypatch.setenv("POLYSKILL_OFFLINE", "0")
    shutil.copy(data_root / NAME, served / "val.txt")
    registry = {"x/val.txt": FileEntry("x/val.txt", FILES[NAME].sha256, f"{base}/val.txt")}
    path = fetch("x/val.txt", tmp_path / "root", registry=registry)
    assert path.read_bytes() == (data_root / NAME).read_bytes()


def test_download_with_wrong_content_leaves_nothing(http_server, tmp_path, monkeypatch):
    served, base = http_server
    monkeypatch.setenv("POLYSKILL_OFFLINE", "0")
    (served / "val.txt").write_text("not the file\n")
    registry = {"x/val.txt": FileEntry("x/val.txt", "0" * 64, f"{base}/val.txt")}
    with pytest.raises(DataError, match="SHA-256"):
        fetch("x/val.txt", tmp_path / "root", registry=registry)
    assert not any(p.is_file() for p in (tmp_path / "root").rglob("*"))


def test_unreachable_address_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYSKILL_OFFLINE", "0")
    registry = {"x/f.txt": FileEntry("x/f.txt", "0" * 64, "http://127.0.0.1:9/f.txt")}
    with pytest.raises(DataError, match="downloading it failed"):
        fetch("x/f.txt", tmp_path, registry=registry)


def test_cache_falls_back_when_root_is_read_only(tmp_path, monkeypatch):
    import polyskill.data.root as root_module

    read_only = tmp_path / "shared"
    monkeypatch.setattr(root_module, "_writable", lambda p: read_only not in p.parents and p != read_only)
    monkeypatch.setattr(root_module, "DEFAULT_ROOT", tmp_path / "home-cache")
    monkeypatch.delenv("POLYSKILL_CACHE", raising=False)
    assert cache_dir(read_only) == tmp_path / "home-cache" / "cache"


def test_cache_env_variable_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYSKILL_CACHE", str(tmp_path / "c"))
    assert cache_dir(tmp_path) == tmp_path / "c"
