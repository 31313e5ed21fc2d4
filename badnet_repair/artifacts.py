"""Where the pipeline keeps its files, and loaders for the ones several stages read."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from . import h5data
from .atomic import atomic_path
from .errors import BadInput

BADNET = "models/badnet.h5"  # full Keras model, loadable by keras.models.load_model
BADNET_INFO = "models/badnet.json"  # how to feed it: input divisor, class count
ATTACK_METRICS = "metrics/attack.json"
SAMPLES_PLOT = "plots/samples.png"
BASELINE_METRICS = "metrics/baseline.json"
ACTIVATIONS = "data/activations.h5"  # the pruned layer's activations on all four files
CHANNEL_SCORES = "plots/channel_scores.csv"
SWEEP_CSV = "plots/prune_sweep.csv"
SWEEP_PLOT = "plots/prune_sweep.png"
VARIANTS = "models/variants"  # pruned_X.h5 (B'), repaired_X.keras (G), variants.json
REPAIRED_METRICS = "metrics/repaired.json"
RESULTS_MD = "metrics/results.md"
REPAIRED_PLOT = "plots/repaired.png"


def badnet(root="."):
    """(model, info) of the BadNet that fetch-data left."""
    from .model import load_badnet

    root = Path(root)
    try:
        info = json.loads((root / BADNET_INFO).read_text())
    except FileNotFoundError:
        raise BadInput(f"{root / BADNET_INFO}: not found; run the fetch-data stage first") from None
    return load_badnet(root / BADNET), info


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
