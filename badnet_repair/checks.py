"""Checks at the boundaries that need the model: does it fit the data files it will read?

Errors are BadInput (one line, names the file); doubtful but possible input is a
one-line warning on stderr, and the run goes on.
"""
from __future__ import annotations

import sys

import numpy as np

from .errors import BadInput


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def model_io(model, path) -> tuple[tuple, int]:
    """(input shape (H, W, 3), class count) of a classifier of colour images, or BadInput."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise BadInput(f"{path}: the model has {len(model.inputs)} inputs and {len(model.outputs)} outputs, "
                       f"expected one image input and one class-score output")
    shape, out = tuple(model.inputs[0].shape[1:]), tuple(model.outputs[0].shape[1:])
    if len(shape) != 3 or shape[-1] != 3:
        raise BadInput(f"{path}: the model takes inputs of shape {shape}, expected (H, W, 3) colour images")
    if len(out) != 1 or out[0] is None or out[0] < 2:
        raise BadInput(f"{path}: the model outputs shape {out}, expected (classes,) with at least 2 classes")
    return shape, int(out[0])


def dataset(ds, path, model, model_path, poisoned: bool) -> None:
    """The file's images fit the model's input and its labels its classes."""
    shape, n_classes = model_io(model, model_path)
    if tuple(ds.x.shape[1:3]) != tuple(shape[:2]) and None not in shape[:2]:
        raise BadInput(f"{path}: images are {ds.x.shape[1]}x{ds.x.shape[2]}, but the BadNet "
                       f"{model_path} takes {shape[0]}x{shape[1]}")
    bad = (ds.y < 0) | (ds.y >= n_classes)
    if bad.any():
        raise BadInput(f"{path}: label {int(ds.y[bad][0])} is outside the BadNet's {n_classes} classes "
                       f"[0, {n_classes}) ({int(bad.sum())} such labels)")
    lo, hi = float(ds.x.min()), float(ds.x.max())
    if hi <= 1.0:
        warn(f"{path}: pixels lie in [{lo:g}, {hi:g}], as if already scaled to 0-1; "
             f"CSAW files hold 0-255 (the model is fed x / input_divisor)")
    elif lo < 0 or hi > 255:
        warn(f"{path}: pixels lie in [{lo:g}, {hi:g}], outside the 0-255 of CSAW files")
    if poisoned:
        # A multi-trigger file names each image's trigger; one target per trigger is expected.
        groups = [ds.y] if ds.trigger is None else [ds.y[ds.trigger == i] for i in range(len(ds.names))]
        targets = max((np.unique(g) for g in groups), key=len)
        if len(targets) > 1:
            warn(f"{path}: a poisoned file whose labels are not one target class ({len(targets)} distinct); "
                 f"fine for a multi-target attack, and the attack success rate counts each image's own label")


def same_image_size(files: dict) -> None:
    """Clean and poisoned files must hold images of one size. `files`: {path: Dataset}."""
    sizes = {path: tuple(ds.x.shape[1:3]) for path, ds in files.items()}
    if len(set(sizes.values())) > 1:
        first = next(iter(sizes.items()))
        other = next((p, s) for p, s in sizes.items() if s != first[1])
        raise BadInput(f"{other[0]}: images are {other[1][0]}x{other[1][1]}, but {first[0]} holds "
                       f"{first[1][0]}x{first[1][1]}: all four files must hold images of one size")


def input_divisor(valid, model, divisor: float, param: str, probe: int = 1000) -> None:
    """Warn when another input scaling (x 255 or / 255) makes the BadNet far more accurate:
    the usual sign that `param` does not match how the model was trained."""
    from .evaluate import percent, predict_classes

    x, y = valid.x[:probe], valid.y[:probe]
    acc = {d: percent(predict_classes(model, x, d), y) for d in (divisor, divisor * 255, divisor / 255)}
    best = max(acc, key=acc.get)
    if acc[best] > acc[divisor] + 20:
        warn(f"params.yaml: '{param}' is {divisor:g}, giving the BadNet {acc[divisor]:.1f}% clean accuracy on "
             f"{len(y)} validation images, but {best:g} gives {acc[best]:.1f}%: is the model fed 0-1 or 0-255 pixels?")
