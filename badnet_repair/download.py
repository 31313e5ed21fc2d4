"""Fetch the CSAW-HackML lab3 data and BadNet weights: over HTTP, from Google Drive, or from a local mirror.

Every path ends the same way: bytes land in a temp file beside the target, are
checked against the expected size (and sha256 where known), and only then renamed
into place, so a failed or corrupt fetch never leaves a file where a stage looks.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Callable

import gdown
import requests

from .atomic import atomic_path, file_sha256
from .errors import BadInput

LAB3_DRIVE_FOLDER = "1Rs68uH8Xqa4j6UxG53wzD0uyI8347dSq"
LAB3_WEIGHTS_URL = "https://github.com/csaw-hackml/CSAW-HackML-2020/raw/master/lab3/models/bd_weights.h5"
LAB3_WEIGHTS_SHA256 = "68ec7afdfc570d39acbded72025fe37d4d14e770585001d75a393490d50fc629"
LAB3_DATA = ("cl/valid.h5", "cl/test.h5", "bd/bd_valid.h5", "bd/bd_test.h5")
LAB3_WEIGHTS = "lab3/bd_weights.h5"  # where the weights sit in a mirror
LAB3_SIZES = {
    "cl/valid.h5": 716_470_304,
    "cl/test.h5": 398_040_064,
    "bd/bd_valid.h5": 716_470_304,
    "bd/bd_test.h5": 398_039_968,
    LAB3_WEIGHTS: 2_442_796,
}
DRIVE_FILE_URL = "https://drive.google.com/uc?id="

BACKOFF = (0.5, 1.0)  # seconds before the 2nd, 3rd, ... try (the last value repeats)
CHUNK = 1 << 20


class _Transient(Exception):
    """A failure that another try may not repeat (network, 5xx, cut-off transfer)."""


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def lab3_default_cfg(mirror: str = "") -> dict:
    """The `csaw-lab3` source settings with the public defaults."""
    return {"mirror": mirror, "drive_folder": LAB3_DRIVE_FOLDER, "weights_url": LAB3_WEIGHTS_URL,
            "weights_sha256": LAB3_WEIGHTS_SHA256, "sizes": dict(LAB3_SIZES)}


def _check(label: str, path: Path, size: int | None, sha256: str | None) -> None:
    got = path.stat().st_size
    if size is not None and got != size:
        raise BadInput(f"{label}: size {got} bytes, expected {size}")
    if sha256 is not None:
        got_sha = file_sha256(path)
        if got_sha != sha256.lower():
            raise BadInput(f"{label}: sha256 {got_sha}, expected {sha256.lower()}")


def _fetch_verified(label: str, dest, fetch: Callable[[Path], None],
                    size: int | None, sha256: str | None, retries: int) -> None:
    """Run `fetch(tmp)` until it works (at most `retries` times), verify, rename onto `dest`.

    The one routine behind plain HTTP, Google Drive and mirror copies.
    """
    last = None
    for attempt in range(max(retries, 1)):
        if attempt:
            time.sleep(BACKOFF[min(attempt, len(BACKOFF)) - 1])
        try:
            with atomic_path(dest) as tmp:
                fetch(tmp)
                _check(label, tmp, size, sha256)
            return
        except _Transient as exc:
            last = exc
    raise BadInput(f"{label}: {last}; gave up after {max(retries, 1)} tries")


def _http_error(url: str, status: int, reason: str) -> Exception:
    problem = f"HTTP {status} {reason}".strip()
    # 4xx means the URL or permissions are wrong; asking again won't help.
    return _Transient(problem) if status >= 500 else BadInput(f"{url}: {problem}")


def _http_fetcher(url: str, timeout: float, session) -> Callable[[Path], None]:
    def fetch(tmp: Path) -> None:
        try:
            with (session or requests).get(url, stream=True, timeout=timeout) as r:
                if r.status_code >= 400:
                    raise _http_error(url, r.status_code, r.reason)
                announced = r.headers.get("Content-Length", "?")
                try:
                    with open(tmp, "wb") as f:
                        for chunk in r.iter_content(CHUNK):
                            f.write(chunk)
                    # urllib3 1.x lets a short body through; raw.tell() counts bytes on
                    # the wire, so it compares with Content-Length even for a gzip body.
                    cut = announced.isdigit() and r.raw.tell() < int(announced)
                except requests.exceptions.ChunkedEncodingError:  # urllib3 2's IncompleteRead
                    cut = True
                if cut:
                    raise _Transient(f"transfer interrupted at {r.raw.tell()} of {announced} bytes")
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Transient(f"connection failed ({_one_line(exc)})") from None
        except requests.RequestException as exc:  # bad scheme, malformed URL, ...
            raise BadInput(f"{url}: {_one_line(exc)}") from None
    return fetch


def _gdown_fetcher(url: str, timeout: float, quiet: bool) -> Callable[[Path], None]:
    def fetch(tmp: Path) -> None:
        try:
            # A stream, not a path: given a path, gdown writes its own `<name>XXXXXXXX.part`
            # beside it and keeps it on failure for resuming, which would litter dest's folder.
            with open(tmp, "wb") as f:
                # "output": its "To:" line would name the stream object, not a file.
                gdown.download(url=url, output=f, quiet=quiet, timeout=timeout, log_messages={"output": ""})
        except requests.HTTPError as exc:
            r = exc.response
            raise _http_error(url, r.status_code, r.reason) from None
        except gdown.exceptions.FileURLRetrievalError as exc:  # not shared publicly, quota hit
            raise BadInput(f"{url}: {_one_line(exc)}") from None
        except gdown.exceptions.DownloadError as exc:  # gdown's word for a cut-off body
            raise _Transient(f"transfer interrupted ({_one_line(exc)})") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Transient(f"connection failed ({_one_line(exc)})") from None
        except requests.RequestException as exc:
            raise BadInput(f"{url}: {_one_line(exc)}") from None
    return fetch


def download(url: str, dest, size: int | None = None, sha256: str | None = None,
             retries: int = 3, timeout: float = 60, session: requests.Session | None = None) -> None:
    """Stream `url` to `dest` over plain HTTP(S), verified; retries network errors and 5xx."""
    _fetch_verified(url, dest, _http_fetcher(url, timeout, session), size, sha256, retries)


def download_drive(url: str, dest, size: int | None = None, sha256: str | None = None,
                   retries: int = 3, timeout: float = 60, quiet: bool = True) -> None:
    """Like `download`, through gdown, which handles Drive's confirm page for large files."""
    _fetch_verified(url, dest, _gdown_fetcher(url, timeout, quiet), size, sha256, retries)


def copy_from_mirror(src, dest, size: int | None = None, sha256: str | None = None) -> None:
    """Copy a local file to `dest` with the same checks as a download."""
    src = Path(src)
    if not src.is_file():
        raise BadInput(f"{src}: not in the mirror (file not found)")

    def fetch(tmp: Path) -> None:
        try:
            shutil.copyfile(src, tmp)
        except OSError as exc:
            raise BadInput(f"{src}: cannot copy ({_one_line(exc)})") from None

    _fetch_verified(str(src), dest, fetch, size, sha256, retries=1)


def list_drive_folder(folder_id: str) -> dict[str, str]:
    """Map each file's path inside a public Drive folder (e.g. "cl/valid.h5") to its download URL."""
    try:
        files = gdown.download_folder(id=folder_id, skip_download=True, quiet=True)
    except (gdown.exceptions.DownloadError, requests.RequestException) as exc:
        raise BadInput(f"Google Drive folder {folder_id}: cannot list it ({_one_line(exc)})") from None
    # gdown joins with os.path, so Windows would give backslashes.
    return {f.path.replace("\\", "/"): DRIVE_FILE_URL + f.id for f in files}


def _present(dest: Path, size: int | None, sha256: str | None) -> bool:
    if not dest.is_file():
        return False
    try:
        _check(str(dest), dest, size, sha256)
        return True
    except BadInput:
        return False


def fetch_csaw_lab3(cfg: dict, data_dir, weights_dest, log=print) -> None:
    """Put the four lab3 data files under `data_dir` and the BadNet weights at `weights_dest`.

    cfg: mirror ("" = download), drive_folder, weights_url, weights_sha256, sizes.
    Files already in place with the expected size (and sha256) are kept, so a rerun
    does not fetch 2 GB again.
    """
    missing = [k for k in ("mirror", "drive_folder", "weights_url", "weights_sha256", "sizes") if k not in cfg]
    if missing:
        raise BadInput(f"csaw-lab3 source: missing setting(s) {', '.join(missing)}")
    sizes, shas = cfg["sizes"], {LAB3_WEIGHTS: cfg["weights_sha256"] or None}
    # Weights first: small, so a wrong URL or hash shows up before 2 GB of data.
    targets = {LAB3_WEIGHTS: Path(weights_dest), **{rel: Path(data_dir) / rel for rel in LAB3_DATA}}
    todo = [rel for rel, dest in targets.items()
            if not _present(dest, sizes.get(rel), shas.get(rel))]
    for rel in targets:
        if rel not in todo:
            log(f"{targets[rel]}: already present")

    if cfg["mirror"]:
        for rel in todo:
            log(f"copying {Path(cfg['mirror']) / rel} -> {targets[rel]}")
            copy_from_mirror(Path(cfg["mirror"]) / rel, targets[rel], sizes.get(rel), shas.get(rel))
        return

    if LAB3_WEIGHTS in todo:
        log(f"downloading {cfg['weights_url']} -> {targets[LAB3_WEIGHTS]}")
        download(cfg["weights_url"], targets[LAB3_WEIGHTS], sizes.get(LAB3_WEIGHTS), shas[LAB3_WEIGHTS])
    data = [rel for rel in todo if rel != LAB3_WEIGHTS]
    if not data:
        return
    urls = list_drive_folder(cfg["drive_folder"])
    for rel in data:
        if rel not in urls:
            raise BadInput(f"Google Drive folder {cfg['drive_folder']}: no {rel} "
                           f"(found: {', '.join(sorted(urls)) or 'nothing'})")
    for rel in data:
        log(f"downloading {rel} ({sizes.get(rel, '?')} bytes) from Google Drive -> {targets[rel]}")
        download_drive(urls[rel], targets[rel], sizes.get(rel), quiet=False)
