"""B'_X and G_X for one threshold X, pruned (export-variants) or fine-pruned (fine-prune):
one folder per X, so DVC runs, caches and skips each X on its own."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import pruning
from .atomic import atomic_dir
from .errors import BadInput
from .model import save_model
from .params import PARAMS_FILE
from .repaired import build_repaired

INDEX = "variant.json"  # in each folder: the threshold, whether it was reached, the files, the facts


def threshold(arg: str) -> float:
    """X as the stage command gives it (dvc.yaml: one stage per item of prune.thresholds)."""
    try:
        x = float(arg)
    except ValueError:
        raise BadInput(f"{PARAMS_FILE}: 'prune.thresholds' item {arg!r} is not a number") from None
    if not 0 < x < 100:
        raise BadInput(f"{PARAMS_FILE}: 'prune.thresholds' value {x:g} must be in (0, 100) percentage points")
    return x


def export(model, sweep, cfg: dict, x: float, out_dir, log=print) -> dict:
    """Pick B'_X from the sweep's clean validation accuracy, and save it (pruned.h5, full
    Keras HDF5 as CSAW's eval.py loads) with G_X (repaired.keras). The folder is built
    beside `out_dir` and swapped in at the end, so a failure leaves no half-written export."""
    acc = sweep["clean_accuracy_valid"].to_numpy()
    order = sweep["channel_removed"].to_numpy()[1:]
    n = len(order)
    step = pruning.choose_step(acc, x, cfg["keep"], cfg["drop"])
    entry = {"threshold": x, "reached": step is not None}
    with atomic_dir(out_dir) as tmp:
        if step is None:
            log(f"X={x:g}: clean validation accuracy never falls {x:g} "
                f"{'points' if cfg['drop'] == 'absolute' else '%'} below {acc[0]:.2f} "
                f"(lowest {acc.min():.2f}): no B' exported for this threshold")
        else:
            pruned = pruning.prune(model, cfg["layer"], order[:step])
            save_model(pruned, tmp / "pruned.h5")
            save_model(build_repaired(model, pruned), tmp / "repaired.keras")
            entry.update(channels_pruned=int(step), fraction_pruned=step / n, clean_accuracy_valid=float(acc[step]),
                         pruned="pruned.h5", repaired="repaired.keras")
            log(f"X={x:g}: {step} of {n} channels pruned, clean validation accuracy {acc[0]:.2f} -> {acc[step]:.2f}")
        (tmp / INDEX).write_text(json.dumps(entry, indent=2) + "\n")
    return entry


def fine_prune(model, entry: dict, valid, holdout, layer: str, cfg: dict, input_divisor: float,
               out_dir, log=print) -> dict:
    """Fine-tune B'_X (`entry`, as read_entry gives it) on the clean validation images
    outside `holdout`, and save it (fine_pruned.h5) with its G (repaired.keras). Built
    beside `out_dir` and swapped in at the end, as `export`."""
    from .evaluate import percent, predict_classes, scale
    from .finetune import fine_prune as tune
    from .finetune import pruned_channels
    from .model import load_badnet

    x = entry["threshold"]
    row = {"threshold": x, "reached": entry["reached"]}
    with atomic_dir(out_dir) as tmp:
        if entry["reached"]:
            pruned = load_badnet(Path(entry["dir"]) / entry["pruned"])
            channels = pruned_channels(pruned, layer)
            log(f"X={x:g}: fine-tuning B' ({len(channels)} channels pruned)")
            train = np.setdiff1d(np.arange(len(valid.y)), holdout)
            tuned, hist = tune(pruned, layer, channels, scale(valid.x[train], input_divisor), valid.y[train],
                               lambda m: percent(predict_classes(m, valid.x[holdout], input_divisor), valid.y[holdout]),
                               cfg, log=log)
            save_model(tuned, tmp / "fine_pruned.h5")
            save_model(build_repaired(model, tuned), tmp / "repaired.keras")
            row.update(channels_pruned=entry["channels_pruned"], fraction_pruned=entry["fraction_pruned"],
                       pruned="fine_pruned.h5", repaired="repaired.keras", **hist)
        else:
            log(f"X={x:g}: no B' for this threshold, nothing to fine-tune")
        (tmp / INDEX).write_text(json.dumps(row, indent=2) + "\n")
    return row


def read_entry(folder, stage: str) -> dict:
    """One X's variant.json, with `dir` (the folder) added."""
    from .artifacts import read_json

    path = Path(folder) / INDEX
    entry = read_json(path, stage)
    if not isinstance(entry.get("threshold"), (int, float)) or not isinstance(entry.get("reached"), bool):
        raise BadInput(f"{path}: not a variant index (no threshold or reached); run `dvc repro --force {stage}`")
    return dict(entry, dir=str(folder))


def spelled_thresholds(path=None) -> list[str]:
    """prune.thresholds as params.yaml spells them: dvc.yaml's foreach names each X's folder
    and stage by that spelling (2 and 2.0 are two folders)."""
    import os

    import yaml

    from .params import PARAMS_ENV

    path = Path(path or os.environ.get(PARAMS_ENV) or PARAMS_FILE)
    return [str(x) for x in ((yaml.safe_load(path.read_text()) or {}).get("prune") or {}).get("thresholds") or []]


def read_index(root, spelled: list[str], stage: str) -> list[dict]:
    """The entries of the thresholds `spelled` (as params.yaml spells them), in that order,
    each from exactly the folder dvc.yaml writes for it, `root`/X, which must hold that X.
    Folders of other thresholds, stale or malformed, are not read; two spellings of one X
    are refused."""
    from .artifacts import variant_dir

    root, entries, seen = Path(root), [], {}
    for name in map(str, spelled):
        x = threshold(name)
        if x in seen:
            raise BadInput(f"{PARAMS_FILE}: 'prune.thresholds' holds X={x:g} twice ({seen[x]!r} and {name!r})")
        seen[x] = name
        entry = read_entry(variant_dir(root, name), f"{stage}@{name}")
        if float(entry["threshold"]) != x:
            raise BadInput(f"{variant_dir(root, name) / INDEX}: holds X={entry['threshold']:g}, not {x:g}; "
                           f"run `dvc repro --force {stage}@{name}`")
        entries.append(entry)
    return entries


def load_repaired(path):
    """G from its .keras file (AgreementGate is registered on import)."""
    from . import repaired  # noqa: F401
    from .model import keras

    return keras.models.load_model(path, compile=False, safe_mode=True)
