"""CSAW-HackML h5 data files: `data` (N, 3, 55, 47) channels first, 0-255; `label` (N,).

A poisoned file of a multi-trigger attack also holds `trigger` (N,), each image's trigger
as an index into the JSON list in its `names` attribute. Files without it (lab3's, and
every single-trigger file) hold one trigger."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from .atomic import atomic_path
from .errors import BadInput

# The lab3 layout of the four files, relative to the project root.
FILES = {
    "valid": "data/cl/valid.h5",
    "test": "data/cl/test.h5",
    "bd_valid": "data/bd/bd_valid.h5",
    "bd_test": "data/bd/bd_test.h5",
}
IMAGE_HW = (55, 47)
CHUNK = 1024  # images per read: bounds the float64 -> float32 working copy


@dataclass
class Dataset:
    x: np.ndarray  # (N, H, W, 3) float32, 0-255
    y: np.ndarray  # (N,) int64
    trigger: np.ndarray | None = None  # (N,) int64 index into `names`, for multi-trigger files
    names: tuple = ()


def _open(path) -> h5py.File:
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path}: file not found")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise BadInput(f"{path}: not a readable HDF5 file ({exc})") from None


def read(path, chunk: int = CHUNK) -> Dataset:
    """Read a CSAW h5 file as NHWC float32 images and int64 labels.

    `data` is (N, 3, H, W) channels first as CSAW writes it; (N, H, W, 3) channels last
    is recognised by where the 3 colour channels are and accepted too. Reads `chunk`
    images at a time into a preallocated array, so a float64 file never needs a second
    full-size copy in memory. Everything checkable without the model is checked here.
    """
    with _open(path) as f:
        for key in ("data", "label"):
            if not isinstance(f.get(key), h5py.Dataset):
                raise BadInput(f"{path}: no '{key}' dataset (found: {sorted(f.keys())})")
        data, label = f["data"], f["label"]
        if data.ndim != 4 or 3 not in (data.shape[1], data.shape[3]):
            raise BadInput(f"{path}: 'data' has shape {data.shape}, expected (N, 3, H, W) channels first "
                           f"or (N, H, W, 3) channels last")
        channels_first = data.shape[1] == 3
        n = data.shape[0]
        if n == 0:
            raise BadInput(f"{path}: holds zero images")
        if label.shape != (n,):
            raise BadInput(f"{path}: 'label' has shape {label.shape}, expected ({n},) to match 'data'")
        for key, d in (("data", data), ("label", label)):
            if d.dtype.kind not in "uif" or d.dtype.kind == "b":
                raise BadInput(f"{path}: '{key}' has dtype {d.dtype}, expected numbers")
        hw = data.shape[2:4] if channels_first else data.shape[1:3]
        x = np.empty((n, *hw, 3), np.float32)
        try:
            for i in range(0, n, chunk):
                part = np.asarray(data[i:i + chunk], np.float32)
                x[i:i + chunk] = part.transpose(0, 2, 3, 1) if channels_first else part
            raw = label[()]
            trigger, names = _triggers(f, path, n)
        except OSError as exc:
            raise BadInput(f"{path}: truncated or corrupt ({exc})") from None
    finite = np.isfinite(x).reshape(n, -1).all(axis=1)
    if not finite.all():
        raise BadInput(f"{path}: image {int(np.argmin(finite))} (and {int(n - finite.sum() - 1)} more) "
                       f"holds NaN or infinite pixels")
    y = np.asarray(raw)
    if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
        bad = int(np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))[0])
        raise BadInput(f"{path}: 'label' holds non-integer values (label {bad} is {y[bad]!r})")
    return Dataset(x, y.astype(np.int64), trigger, names)


def _triggers(f: h5py.File, path, n: int):
    if "trigger" not in f:
        return None, ()
    d = f["trigger"]
    try:
        names = tuple(json.loads(d.attrs["names"]))
    except (KeyError, TypeError, ValueError):
        raise BadInput(f"{path}: 'trigger' has no 'names' attribute holding a JSON list of names") from None
    t = np.asarray(d[()])
    if t.shape != (n,) or t.dtype.kind not in "iu" or (n and not 0 <= t.min() <= t.max() < len(names)):
        raise BadInput(f"{path}: 'trigger' must be ({n},) integers indexing its {len(names)} names")
    return t.astype(np.int64), names


def write(path, x: np.ndarray, y: np.ndarray, dtype=np.uint8, trigger=None, names=()) -> None:
    """Write NHWC images and labels as a CSAW h5 file, atomically.

    Chunked and without timestamps, so the same arrays give the same bytes.
    """
    if x.ndim != 4 or x.shape[-1] != 3 or len(x) != len(y):
        raise ValueError(f"expected (N, H, W, 3) images and N labels, got {x.shape} and {y.shape}")
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", track_order=False) as f:
            n = len(x)
            d = f.create_dataset("data", shape=(n, 3) + x.shape[1:3], dtype=dtype,
                                 chunks=(min(max(n, 1), 256), 3) + x.shape[1:3], track_times=False)
            for i in range(0, n, CHUNK):
                d[i:i + CHUNK] = x[i:i + CHUNK].transpose(0, 3, 1, 2).astype(dtype)
            f.create_dataset("label", data=np.asarray(y, np.int64), track_times=False)
            if trigger is not None:
                t = f.create_dataset("trigger", data=np.asarray(trigger, np.uint8), track_times=False)
                t.attrs["names"] = json.dumps(list(names))
