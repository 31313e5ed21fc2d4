"""The `badnet-repair` command. `classify` is the CSAW-HackML-2020 interface: a class per
input image, where class N (the BadNet's class count) from a repaired net G means
"poisoned". `bring` points params.yaml at a user's own BadNet and files, once they pass
every check fetch-data makes."""
from __future__ import annotations

import argparse
import io
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


BRING_OPTIONS = {"valid": "--valid", "test": "--test", "bd_valid": "--bd-valid", "bd_test": "--bd-test",
                 "model": "MODEL", "input_divisor": "--input-divisor"}


def bring(args) -> None:
    """Check the user's BadNet and files as fetch-data will, then set data.source: local and
    data.local in the params file, keeping its comments. Nothing is written unless every
    check passes."""
    from ruamel.yaml import YAML, YAMLError

    from .atomic import write_text
    from .sources import check_local

    cfg = {key: str(Path(getattr(args, key)).resolve()) for key in ("valid", "test", "bd_valid", "bd_test", "model")}
    cfg["input_divisor"] = args.input_divisor
    params_path = Path(args.params)
    yaml = YAML()  # round-trip: comments, quotes, key order and line lengths stay
    yaml.preserve_quotes, yaml.width = True, 4096
    try:
        doc = yaml.load(params_path.read_text())
    except FileNotFoundError:
        raise BadInput(f"{params_path}: file not found; run `bring` from the project's root, or give --params") from None
    except YAMLError as exc:
        raise BadInput(f"{params_path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), dict) or not isinstance(doc["data"].get("local"), dict):
        raise BadInput(f"{params_path}: no 'data.local' section to fill")
    check_local(cfg, name=lambda key: BRING_OPTIONS[key])
    doc["data"]["source"] = "local"
    for key, value in cfg.items():
        doc["data"]["local"][key] = value
    out = io.StringIO()
    yaml.dump(doc, out)
    write_text(params_path, out.getvalue())
    print(f"{params_path}: data.source is local, data.local holds your model and files (absolute paths). "
          f"Now run `dvc repro`.")


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
    b = sub.add_parser("bring", help="point params.yaml at your own BadNet and its four CSAW-format files",
                       description="Check MODEL and the four files as fetch-data will (every one, before "
                                   "anything is written), then set data.source: local and data.local in "
                                   "params.yaml. Then run `dvc repro`.")
    b.add_argument("model", metavar="MODEL", help="a full Keras model (.h5/.keras) or DeepID weights (.h5)")
    for key in ("valid", "test", "bd_valid", "bd_test"):
        b.add_argument(BRING_OPTIONS[key], dest=key, required=True, metavar="H5",
                       help=f"the {key.replace('_', ' ')} file (CSAW format: data, label)")
    b.add_argument("--input-divisor", type=float, default=255.0,
                   help="the model is fed x / this: 1 for raw 0-255 pixels, 255 (default) for x / 255")
    b.add_argument("--params", default="params.yaml", help="the params file to fill (default: params.yaml)")
    b.set_defaults(run=bring)
    return ap


@cli
def main(argv=None) -> None:
    args = parser().parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
