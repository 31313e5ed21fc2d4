"""The `badnet-repair` command. `classify` is the CSAW-HackML-2020 interface: a class per
input image, where class N (the BadNet's class count) from a repaired net G means
"poisoned"."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .errors import BadInput, cli

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
H5_SUFFIXES = {".h5", ".hdf5"}


def read_image(path: Path, hw) -> np.ndarray:
    """One (H, W, 3) float32 image, 0-255. Greyscale and RGBA are converted to RGB; any
    other size than the model's input is an error (resize it yourself: no silent resampling)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            rgb = np.asarray(img.convert("RGB"), np.float32)
    except FileNotFoundError:
        raise BadInput(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise BadInput(f"{path}: not a readable PNG or JPEG image ({exc})") from None
    if tuple(rgb.shape[:2]) != tuple(hw):
        raise BadInput(f"{path}: image is {rgb.shape[1]}x{rgb.shape[0]} (width x height), the model takes "
                       f"{hw[1]}x{hw[0]}; resize it first")
    return rgb


def read_inputs(paths, hw):
    """(names, images) from image files and CSAW h5 files, in the order given."""
    from . import h5data

    names, images = [], []
    for p in map(Path, paths):
        suffix = p.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            names.append(str(p))
            images.append(read_image(p, hw)[None])
        elif suffix in H5_SUFFIXES:
            ds = h5data.read(p)
            if tuple(ds.x.shape[1:3]) != tuple(hw):
                raise BadInput(f"{p}: images are {ds.x.shape[1]}x{ds.x.shape[2]}, the model takes {hw[0]}x{hw[1]}")
            names += [f"{p}[{i}]" for i in range(len(ds.x))]
            images.append(ds.x)
        else:
            raise BadInput(f"{p}: expected a .png, .jpg/.jpeg image or a CSAW .h5 file")
    return names, np.concatenate(images)


def input_divisor(model_path: Path, given: float | None) -> float:
    """--input-divisor, else the one fetch-data recorded in badnet.json beside the model
    (models/) or up to two folders up (models/variants/X/)."""
    if given is not None:
        if not given > 0:
            raise BadInput(f"--input-divisor must be > 0, got {given:g}")
        return given
    for folder in (model_path.parent, model_path.parent.parent, model_path.parent.parent.parent):
        info = folder / "badnet.json"
        if info.is_file():
            try:
                return float(json.loads(info.read_text())["input_divisor"])
            except (ValueError, KeyError, TypeError):
                raise BadInput(f"{info}: no valid 'input_divisor'") from None
    raise BadInput(f"{model_path}: no badnet.json beside it to say how it is fed; give --input-divisor "
                   f"(1 if it takes raw 0-255 pixels, 255 if x / 255)")


def load_any(path: Path):
    """B, B' or G: full Keras models (.h5 or .keras; G's custom layer is registered) or DeepID weights."""
    from . import repaired  # noqa: F401  (registers AgreementGate)
    from .model import load_badnet

    return load_badnet(path)


def classify(args) -> None:
    from .checks import model_io
    from .evaluate import predict_classes

    model_path = Path(args.model)
    model = load_any(model_path)
    shape, _ = model_io(model, model_path)
    names, x = read_inputs(args.inputs, shape[:2])
    classes = predict_classes(model, x, input_divisor(model_path, args.input_divisor))
    sys.stdout.write("".join(f"{n}\t{int(c)}\n" for n, c in zip(names, classes)))


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="badnet-repair", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    c = sub.add_parser("classify", help="print a class for each input image",
                       description="Print `INPUT<TAB>class` per image. A repaired net G prints N "
                                   "(the BadNet's class count) for an input it flags as poisoned.")
    c.add_argument("model", metavar="MODEL", help="G (.keras), B' or B (.h5)")
    c.add_argument("inputs", metavar="INPUT", nargs="+", help="PNG/JPEG images (55x47 for DeepID) or CSAW .h5 files")
    c.add_argument("--input-divisor", type=float, default=None,
                   help="the model is fed x / this (default: from models/badnet.json)")
    c.set_defaults(run=classify)
    return ap


@cli
def main(argv=None) -> None:
    args = parser().parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
