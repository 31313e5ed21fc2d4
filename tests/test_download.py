"""Downloads against a local HTTP server (127.0.0.1 only), mirror copies, and the lab3 fetch."""
from __future__ import annotations

import hashlib
import http.server
import shutil
import socket
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from badnet_repair import download as dl
from badnet_repair import h5data
from badnet_repair.errors import BadInput

REAL_WEIGHTS = Path("/work/shared/csaw-hackml-2020/lab3/bd_weights.h5")
GOOD = np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8).tobytes()
GOOD_SHA = hashlib.sha256(GOOD).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    """Paths: /good, /missing (404), /flaky (500 once), /down (always 500),
    /short (body cut off), /short-once, /wrong (same size, other bytes), /big;
    anything in server.files is served as is."""

    def do_GET(self):
        srv = self.server
        with srv.lock:
            srv.counts[self.path] += 1
            n = srv.counts[self.path]
        if self.path in srv.files:
            return self._send(srv.files[self.path])
        if self.path == "/good" or (self.path == "/flaky" and n > 1) or (self.path == "/short-once" and n > 1):
            return self._send(GOOD)
        if self.path == "/wrong":
            return self._send(bytes(reversed(GOOD)))
        if self.path == "/big":
            return self._send(GOOD + b"extra")
        if self.path in ("/flaky", "/down"):
            return self.send_error(500)
        if self.path in ("/short", "/short-once"):
            # Announce the full length, send half, then drop the connection.
            return self._send(GOOD, body=GOOD[: len(GOOD) // 2])
        self.send_error(404)

    def _send(self, data, body=None):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data if body is None else body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.counts, srv.files, srv.lock = Counter(), {}, threading.Lock()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(dl, "BACKOFF", (0.01,))


# The shared verify/retry routine must behave the same behind requests and behind gdown.
FETCHERS = [pytest.param(dl.download, id="requests"), pytest.param(dl.download_drive, id="gdown")]


def fails(fetch, url, dest, **kw) -> str:
    with pytest.raises(BadInput) as info:
        fetch(url, dest, **kw)
    msg = str(info.value)
    assert "\n" not in msg and url in msg, msg
    return msg


def only(directory: Path, *names: str) -> None:
    """No partial or temp files: the directory holds exactly `names`."""
    assert sorted(p.name for p in directory.iterdir()) == sorted(names)


@pytest.mark.parametrize("fetch", FETCHERS)
def test_good_download_has_exact_bytes(server, tmp_path, fetch):
    dest = tmp_path / "sub" / "out.bin"
    fetch(server.url + "/good", dest, size=len(GOOD), sha256=GOOD_SHA)
    assert dest.read_bytes() == GOOD
    only(dest.parent, "out.bin")


@pytest.mark.parametrize("fetch", FETCHERS)
def test_404_is_not_retried(server, tmp_path, fetch):
    msg = fails(fetch, server.url + "/missing", tmp_path / "out.bin")
    assert "HTTP 404" in msg
    assert server.counts["/missing"] == 1
    only(tmp_path)


@pytest.mark.parametrize("fetch", FETCHERS)
def test_500_is_retried(server, tmp_path, fetch):
    fetch(server.url + "/flaky", tmp_path / "out.bin", size=len(GOOD), sha256=GOOD_SHA)
    assert server.counts["/flaky"] == 2
    assert (tmp_path / "out.bin").read_bytes() == GOOD


@pytest.mark.parametrize("fetch", FETCHERS)
def test_persistent_500_gives_up_after_retries(server, tmp_path, fetch):
    msg = fails(fetch, server.url + "/down", tmp_path / "out.bin", retries=3)
    assert "HTTP 500" in msg and "3 tries" in msg
    assert server.counts["/down"] == 3
    only(tmp_path)


@pytest.mark.parametrize("fetch", FETCHERS)
def test_interrupted_transfer_is_retried(server, tmp_path, fetch):
    fetch(server.url + "/short-once", tmp_path / "out.bin", size=len(GOOD))
    assert server.counts["/short-once"] == 2
    assert (tmp_path / "out.bin").read_bytes() == GOOD


@pytest.mark.parametrize("fetch", FETCHERS)
def test_interrupted_transfer_fails_cleanly(server, tmp_path, fetch):
    msg = fails(fetch, server.url + "/short", tmp_path / "out.bin", retries=2)
    assert "interrupted" in msg and "2 tries" in msg
    assert server.counts["/short"] == 2
    only(tmp_path)  # gdown's own .part files included


@pytest.mark.parametrize("fetch", FETCHERS)
def test_sha256_mismatch(server, tmp_path, fetch):
    msg = fails(fetch, server.url + "/wrong", tmp_path / "out.bin", size=len(GOOD), sha256=GOOD_SHA)
    assert f"expected {GOOD_SHA}" in msg and "sha256" in msg
    assert server.counts["/wrong"] == 1  # corrupt content is not a network hiccup
    only(tmp_path)


@pytest.mark.parametrize("fetch", FETCHERS)
def test_size_mismatch(server, tmp_path, fetch):
    msg = fails(fetch, server.url + "/big", tmp_path / "out.bin", size=len(GOOD))
    assert f"size {len(GOOD) + 5} bytes, expected {len(GOOD)}" in msg
    only(tmp_path)


@pytest.mark.parametrize("fetch", FETCHERS)
@pytest.mark.parametrize("path", ["/missing", "/down", "/short", "/wrong"])
def test_failed_download_leaves_existing_file_untouched(server, tmp_path, fetch, path):
    dest = tmp_path / "out.bin"
    dest.write_bytes(b"previous contents")
    fails(fetch, server.url + path, dest, size=len(GOOD), sha256=GOOD_SHA, retries=2)
    assert dest.read_bytes() == b"previous contents"
    only(tmp_path, "out.bin")


def test_connection_refused_is_retried_then_reported(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/x"
    msg = fails(dl.download, url, tmp_path / "out.bin", retries=2)
    assert "connection failed" in msg and "2 tries" in msg
    only(tmp_path)


def test_mirror_missing_file(tmp_path):
    with pytest.raises(BadInput, match="not in the mirror"):
        dl.copy_from_mirror(tmp_path / "nope.h5", tmp_path / "out.h5")
    only(tmp_path)


def test_list_drive_folder_maps_paths_to_urls(monkeypatch):
    import gdown
    from gdown.download import GoogleDriveFileToDownload as F

    calls = []

    def fake(**kw):
        calls.append(kw)
        return [F(id="abc", path="cl/valid.h5", local_path="x"), F(id="def", path="bd\\bd_test.h5", local_path="y")]

    monkeypatch.setattr(gdown, "download_folder", fake)
    assert dl.list_drive_folder("FOLDER") == {"cl/valid.h5": "https://drive.google.com/uc?id=abc",
                                               "bd/bd_test.h5": "https://drive.google.com/uc?id=def"}
    assert calls[0]["id"] == "FOLDER" and calls[0]["skip_download"] is True

    def broken(**kw):
        raise gdown.exceptions.DownloadError("Failed to retrieve folder contents\nsecond line")

    monkeypatch.setattr(gdown, "download_folder", broken)
    with pytest.raises(BadInput, match="FOLDER") as info:
        dl.list_drive_folder("FOLDER")
    assert "\n" not in str(info.value)


# --- fetch_csaw_lab3 ---------------------------------------------------------------

@pytest.fixture
def mirror(tmp_path) -> Path:
    """A mirror laid out like the real one: tiny CSAW h5 files plus the real weights."""
    root = tmp_path / "mirror"
    for i, rel in enumerate(dl.LAB3_DATA):
        rng = np.random.default_rng(i)
        h5data.write(root / rel, rng.integers(0, 256, (3, 55, 47, 3)), rng.integers(0, 10, 3))
    (root / "lab3").mkdir()
    shutil.copyfile(REAL_WEIGHTS, root / dl.LAB3_WEIGHTS)
    return root


def lab3_cfg(root: Path, **kw) -> dict:
    """The default cfg pointed at mirror `root`, with its files' actual sizes."""
    cfg = dl.lab3_default_cfg(mirror=str(root))
    cfg["sizes"] = {rel: (root / rel).stat().st_size for rel in (*dl.LAB3_DATA, dl.LAB3_WEIGHTS)}
    return {**cfg, **kw}


def assert_fetched(mirror: Path, out: Path) -> None:
    for rel in dl.LAB3_DATA:
        assert (out / "data" / rel).read_bytes() == (mirror / rel).read_bytes()
        assert len(h5data.read(out / "data" / rel).y) == 3
    assert (out / "bd_weights.h5").read_bytes() == REAL_WEIGHTS.read_bytes()


def test_default_sizes_match_the_real_weights():
    assert dl.LAB3_SIZES[dl.LAB3_WEIGHTS] == REAL_WEIGHTS.stat().st_size
    assert hashlib.sha256(REAL_WEIGHTS.read_bytes()).hexdigest() == dl.LAB3_WEIGHTS_SHA256


def test_fetch_from_mirror(mirror, tmp_path):
    out, logs = tmp_path / "out", []
    dl.fetch_csaw_lab3(lab3_cfg(mirror), out / "data", out / "bd_weights.h5", log=logs.append)
    assert_fetched(mirror, out)
    assert sum("copying" in line for line in logs) == 5
    # A rerun finds everything in place and copies nothing.
    logs.clear()
    dl.fetch_csaw_lab3(lab3_cfg(mirror), out / "data", out / "bd_weights.h5", log=logs.append)
    assert sum("already present" in line for line in logs) == 5 and not any("copying" in line for line in logs)


def test_fetch_from_mirror_with_corrupt_weights(mirror, tmp_path):
    weights = mirror / dl.LAB3_WEIGHTS
    raw = bytearray(weights.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    weights.write_bytes(bytes(raw))
    out = tmp_path / "out"
    with pytest.raises(BadInput, match="sha256") as info:
        dl.fetch_csaw_lab3(lab3_cfg(mirror), out / "data", out / "bd_weights.h5", log=lambda _: None)
    assert str(weights) in str(info.value) and dl.LAB3_WEIGHTS_SHA256 in str(info.value)
    assert not (out / "bd_weights.h5").exists()
    only(out)  # no temp file left beside the weights


def test_fetch_from_mirror_missing_file(mirror, tmp_path):
    cfg = lab3_cfg(mirror)
    (mirror / "bd/bd_test.h5").unlink()
    with pytest.raises(BadInput, match="bd_test.h5: not in the mirror"):
        dl.fetch_csaw_lab3(cfg, tmp_path / "data", tmp_path / "w.h5", log=lambda _: None)


def serve_mirror(server, mirror: Path, monkeypatch, listing=dl.LAB3_DATA) -> dict:
    """Serve the mirror over HTTP and make the Drive listing point at it (Google is unreachable)."""
    for rel in (*dl.LAB3_DATA, dl.LAB3_WEIGHTS):
        server.files[f"/{rel}"] = (mirror / rel).read_bytes()
    listed = []
    monkeypatch.setattr(dl, "list_drive_folder",
                        lambda folder: listed.append(folder) or {rel: f"{server.url}/{rel}" for rel in listing})
    return lab3_cfg(mirror, mirror="", weights_url=f"{server.url}/{dl.LAB3_WEIGHTS}", drive_folder="FOLDER"), listed


def test_fetch_by_download(server, mirror, tmp_path, monkeypatch):
    cfg, listed = serve_mirror(server, mirror, monkeypatch)
    out = tmp_path / "out"
    dl.fetch_csaw_lab3(cfg, out / "data", out / "bd_weights.h5", log=lambda _: None)
    assert_fetched(mirror, out)
    assert listed == ["FOLDER"]
    assert all(server.counts[f"/{rel}"] == 1 for rel in (*dl.LAB3_DATA, dl.LAB3_WEIGHTS))


def test_fetch_by_download_with_file_missing_from_drive(server, mirror, tmp_path, monkeypatch):
    cfg, _ = serve_mirror(server, mirror, monkeypatch, listing=dl.LAB3_DATA[:3])
    with pytest.raises(BadInput, match="FOLDER: no bd/bd_test.h5"):
        dl.fetch_csaw_lab3(cfg, tmp_path / "data", tmp_path / "w.h5", log=lambda _: None)
    assert not (tmp_path / "data").exists()  # checked before any data download starts


def test_fetch_by_download_with_wrong_weights_hash(server, mirror, tmp_path, monkeypatch):
    cfg, listed = serve_mirror(server, mirror, monkeypatch)
    cfg["weights_sha256"] = "0" * 64
    with pytest.raises(BadInput, match="sha256"):
        dl.fetch_csaw_lab3(cfg, tmp_path / "data", tmp_path / "w.h5", log=lambda _: None)
    assert listed == [] and not (tmp_path / "w.h5").exists()  # weights fail before 2 GB of data
