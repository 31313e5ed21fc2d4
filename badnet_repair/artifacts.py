"""Where the pipeline keeps its files, and loaders for the ones several stages read."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from . import checks, h5data
from .atomic import atomic_path
from .errors import BadInput

BADNET = "models/badnet.h5"  # full Keras model, loadable by keras.models.load_model
BADNET_INFO = "models/badnet.json"  # how to feed it: input divisor, class count
TRAIN_TIME = "models/train_time.json"  # synthetic source: seconds spent training the BadNet
ATTACK_METRICS = "metrics/attack.json"
SAMPLES_PLOT = "plots/samples.png"
BASELINE_METRICS = "metrics/baseline.json"
ACTIVATIONS = "data/activations.h5"  # the pruned layer's activations on all four files
CHANNEL_SCORES = "plots/channel_scores.csv"
SWEEP_CSV = "plots/prune_sweep.csv"
SWEEP_PLOT = "plots/prune_sweep.png"
PRUNE_ORDERS_CSV = "plots/prune_orders.csv"  # the sweep in both orders (prune-orders)
PRUNE_ORDERS_PLOT = "plots/prune_orders.png"
PRUNE_ORDERS_METRICS = "metrics/prune_orders.json"  # B' of each order and X, by the stopping rule
DETECTOR_CSV = "plots/detector.csv"  # G (B with the step-k net) as a detector, at every sweep step
DETECTOR_PLOT = "plots/detector.png"
FINE_PRUNED = "models/fine_pruned"  # X/: fine_pruned.h5 (B'_X fine-tuned), repaired.keras (its G), variant.json
FINE_PRUNE_HISTORY = "plots/fine_prune_history.csv"
FINE_PRUNE_METRICS = "metrics/fine_prune.json"
VARIANTS = "models/variants"  # X/: pruned.h5 (B'_X), repaired.keras (G_X), variant.json
REPAIRED_METRICS = "metrics/repaired.json"
RESULTS_MD = "metrics/results.md"
REPAIRED_PLOT = "plots/repaired.png"
PLOTS_TEMPLATE = "plots/plots_template.html"  # .dvc/config plots.html_template: Vega inlined, offline
REPORT = "plots/report.html"
DEFENSES_DIR = "models/defenses"  # NAME/: defended.h5, repaired.keras (its G), defense.json
DEFENSES_METRICS = "metrics/defenses.json"
SCAN_METRICS = "metrics/scan.json"  # the clean-only scan of B and of every defended net
DETECTOR = "models/detector.keras"  # B and the default defense's net, gated by the scan's targets on B


def variant_dir(root, x: str) -> Path:
    """The folder of one threshold's B' and G: `root`/X, X as dvc.yaml's foreach writes it."""
    return Path(root) / x


def read_json(path, stage: str):
    """A JSON object another stage wrote; a one-line error naming the file otherwise."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise BadInput(f"{path}: not found; run the {stage} stage first") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: not valid JSON ({exc}); run `dvc repro --force {stage}`") from None
    if not isinstance(obj, dict):
        raise BadInput(f"{path}: not a JSON object; run `dvc repro --force {stage}`")
    return obj


def scan_targets(root=".", key="targets") -> list[int]:
    """The targets (or, key "shifts", the offsets) the scan found on B (metrics/scan.json):
    the detector's suspects."""
    path = Path(root) / SCAN_METRICS
    found = read_json(path, "scan").get("badnet", {}).get(key)
    if not isinstance(found, list) or not all(isinstance(t, int) and t >= 0 for t in found):
        raise BadInput(f"{path}: no list of B's {key} under 'badnet'; run `dvc repro --force scan`")
    return found


def badnet(root="."):
    """(model, info) of the BadNet that fetch-data left."""
    from .model import load_badnet

    root = Path(root)
    path = root / BADNET_INFO
    info = read_json(path, "fetch-data")
    for key, kind in (("input_divisor", (int, float)), ("num_classes", int)):
        if not isinstance(info.get(key), kind) or isinstance(info.get(key), bool):
            raise BadInput(f"{path}: no valid '{key}'; run `dvc repro --force fetch-data`")
    model = load_badnet(root / BADNET)
    checks.model_io(model, root / BADNET)
    if int(model.output_shape[-1]) != info["num_classes"]:
        raise BadInput(f"{root / BADNET}: has {model.output_shape[-1]} classes, but {path} says "
                       f"{info['num_classes']}; run `dvc repro --force fetch-data`")
    return model, info


def read_split(split: str, model, root=".", path=None) -> h5data.Dataset:
    """One of the four data files, checked against the BadNet that will read it."""
    path = Path(path) if path else Path(root) / h5data.FILES[split]
    ds = h5data.read(path)
    checks.dataset(ds, path, model, Path(root) / BADNET, poisoned=split.startswith("bd_"))
    return ds


def write_activations(path, acts: dict, labels: dict) -> None:
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for split in acts:
            f.create_dataset(f"{split}/activations", data=acts[split], track_times=False)
            f.create_dataset(f"{split}/labels", data=labels[split], track_times=False)


def read_activations(path, splits=tuple(h5data.FILES)):
    """({split: activations}, {split: labels}) from the activations cache."""
    with h5data._open(path) as f:
        try:
            return ({s: f[f"{s}/activations"][()] for s in splits},
                    {s: f[f"{s}/labels"][()].astype(np.int64) for s in splits})
        except KeyError as exc:
            raise BadInput(f"{path}: incomplete activations cache ({exc})") from None


def read_sweep(path=SWEEP_CSV):
    """The prune-sweep table, with the columns later stages need."""
    import pandas as pd

    try:
        sweep = pd.read_csv(path)
    except FileNotFoundError:
        raise BadInput(f"{path}: not found; run the prune-sweep stage first") from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise BadInput(f"{path}: not a readable CSV ({exc})") from None
    missing = {"channels_pruned", "channel_removed", "clean_accuracy_valid"} - set(sweep.columns)
    if missing or len(sweep) < 2:
        raise BadInput(f"{path}: not a prune-sweep table (missing {sorted(missing) or 'rows'}); "
                       f"run `dvc repro --force prune-sweep`")
    return sweep
