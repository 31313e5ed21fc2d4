"""The three data sources behind fetch-data. Each leaves the lab3 layout in place:
data/cl/{valid,test}.h5, data/bd/bd_{valid,test}.h5 and the BadNet in models/."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

from . import checks, h5data
from .atomic import atomic_path, write_json
from .errors import BadInput
from .artifacts import ATTACK_METRICS, BADNET, BADNET_INFO, SAMPLES_PLOT, badnet, read_split
from .params import PARAMS_FILE, positive
log_line = partial(print, flush=True)  # stage logs go to files and pipes: do not buffer


def _save_badnet(model, info: dict, root: Path) -> None:
    from .model import save_model

    save_model(model, root / BADNET)
    write_json(root / BADNET_INFO, info)


def synthetic(cfg: dict, root: Path, log=log_line) -> dict:
    """Generate the embedded benchmark and train its BadNet. Returns attack facts for the metrics."""
    from .attack import Split, poisoned_training_labels, render_split, train_badnet
    from .synthetic import Trigger, make_identities

    name = "data.synthetic"
    positive(cfg, name, ["identities", "train_per_identity", "valid_per_identity", "test_per_identity",
                         "epochs", "batch_size", "learning_rate", "input_divisor", "poison_rate"],
             upper={"poison_rate": 1.0})
    k, target, seed = cfg["identities"], cfg["target"], cfg["seed"]
    if k < 2:
        raise BadInput(f"{PARAMS_FILE}: '{name}.identities' must be at least 2, got {k}")
    if not 0 <= target < k:
        raise BadInput(f"{PARAMS_FILE}: '{name}.target' must be in [0, {k}), got {target}")
    ids = make_identities(k, seed)
    trigger = Trigger()

    t = time.perf_counter()
    identity, label, poisoned = poisoned_training_labels(
        k, cfg["train_per_identity"], cfg["poison_rate"], target, np.random.default_rng([seed, 1]))
    x = np.empty((len(label), 55, 47, 3), np.float32)
    x[~poisoned] = render_split(ids, Split(identity[~poisoned], (seed, 2)))
    x[poisoned] = render_split(ids, Split(identity[poisoned], (seed, 3)), trigger)[1]
    log(f"poisoned training set: {len(x)} images, {int(poisoned.sum())} poisoned "
        f"({100 * poisoned.mean():.2f}%), target {target} [{time.perf_counter() - t:.1f}s]")

    t = time.perf_counter()
    model, train_acc = train_badnet(x, label, k, cfg["input_divisor"], cfg["epochs"], cfg["batch_size"],
                                    cfg["learning_rate"], seed, log=log)
    del x
    log(f"BadNet trained [{time.perf_counter() - t:.1f}s]")

    t = time.perf_counter()
    for split, per, key in (("valid", cfg["valid_per_identity"], 4), ("test", cfg["test_per_identity"], 5)):
        labels = np.repeat(np.arange(k), per)
        clean, triggered = render_split(ids, Split(labels, (seed, key)), trigger)
        h5data.write(root / h5data.FILES[split], clean, labels)
        keep = labels != target  # as CSAW: poisoned files hold non-target images labelled target
        h5data.write(root / h5data.FILES["bd_" + split], triggered[keep], np.full(int(keep.sum()), target))
    log(f"wrote the four data files [{time.perf_counter() - t:.1f}s]")

    _save_badnet(model, {"source": "synthetic", "input_divisor": cfg["input_divisor"],
                         "num_classes": k, "target": target}, root)
    return {"poison_rate": cfg["poison_rate"], "target": target, "train_images": len(label),
            "train_poisoned": int(poisoned.sum()), "train_accuracy": round(train_acc, 4)}


def csaw_lab3(cfg: dict, root: Path, log=log_line) -> dict:
    """Download (or copy from a mirror) the lab3 data and BadNet weights."""
    from .download import LAB3_SIZES, fetch_csaw_lab3
    from .model import load_badnet

    positive(cfg, "data.csaw", ["input_divisor"])
    (root / "models").mkdir(parents=True, exist_ok=True)
    fd, weights = tempfile.mkstemp(prefix=".bd_weights.", suffix=".h5", dir=root / "models")
    os.close(fd)
    try:
        fetch_csaw_lab3(dict(cfg, sizes=LAB3_SIZES), root / "data", Path(weights), log=log)
        model = load_badnet(weights)
    finally:
        Path(weights).unlink(missing_ok=True)
    _save_badnet(model, {"source": "csaw-lab3", "input_divisor": cfg["input_divisor"],
                         "num_classes": int(model.output_shape[-1])}, root)
    return {}


def local(cfg: dict, root: Path, log=log_line) -> dict:
    """Bring your own BadNet: copy the four files in, and store the model as a full Keras model."""
    from .model import load_badnet

    positive(cfg, "data.local", ["input_divisor"])
    for key in ("valid", "test", "bd_valid", "bd_test", "model"):
        if not cfg[key]:
            raise BadInput(f"{PARAMS_FILE}: 'data.local.{key}' is empty: give the path of your file")
    model = load_badnet(cfg["model"])
    _, n_classes = checks.model_io(model, cfg["model"])
    files = {}
    for key in h5data.FILES:  # every file is checked before anything is copied
        files[cfg[key]] = h5data.read(cfg[key])
        checks.dataset(files[cfg[key]], cfg[key], model, cfg["model"], poisoned=key.startswith("bd_"))
    checks.same_image_size(files)
    del files
    for key, rel in h5data.FILES.items():
        with atomic_path(root / rel) as tmp:
            shutil.copyfile(cfg[key], tmp)
    _save_badnet(model, {"source": "local", "input_divisor": cfg["input_divisor"],
                         "num_classes": n_classes}, root)
    return {}


SOURCES = {"synthetic": synthetic, "csaw-lab3": csaw_lab3, "local": local}
SOURCE_SECTION = {"synthetic": "synthetic", "csaw-lab3": "csaw", "local": "local"}


def fetch(data_params: dict, root=".", log=log_line) -> dict:
    """Run the configured source, then check the BadNet on the validation files and
    write metrics/attack.json and plots/samples.png. Returns the metrics."""
    from .evaluate import percent, predict_classes
    from .plots import samples_grid

    root = Path(root)
    source = data_params["source"]
    facts = SOURCES[source](data_params[SOURCE_SECTION[source]], root, log=log)

    model, info = badnet(root)
    valid, bd = read_split("valid", model, root), read_split("bd_valid", model, root)
    checks.same_image_size({root / h5data.FILES[s]: d for s, d in (("valid", valid), ("bd_valid", bd))})
    checks.input_divisor(valid, model, info["input_divisor"], f"data.{SOURCE_SECTION[source]}.input_divisor")
    clean_acc = percent(predict_classes(model, valid.x, info["input_divisor"]), valid.y)
    asr = percent(predict_classes(model, bd.x, info["input_divisor"]), bd.y)
    metrics = {"source": source, "clean_valid_accuracy": round(clean_acc, 4),
               "attack_success_rate": round(asr, 4), **facts}
    write_json(root / ATTACK_METRICS, metrics)

    # The synthetic bd file is exactly the non-target valid images wearing the trigger,
    # so show true pairs; for other sources the pairing is unknown, so show equal indices.
    bd_pick = np.linspace(0, len(bd.y) - 1, 8).astype(int)
    pairs = np.flatnonzero(valid.y != info["target"]) if "target" in info else np.arange(len(valid.y))
    pick = pairs[np.minimum(bd_pick, len(pairs) - 1)]
    samples_grid(valid.x[pick], bd.x[bd_pick], valid.y[pick], bd.y[bd_pick], root / SAMPLES_PLOT)
    log(f"BadNet: clean validation accuracy {clean_acc:.2f}%, attack success rate {asr:.2f}%")
    return metrics
