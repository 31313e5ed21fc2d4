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
from .artifacts import ATTACK_METRICS, BADNET, BADNET_INFO, SAMPLES_PLOT, TRAIN_TIME, badnet, read_split
from .params import PARAMS_FILE, positive
log_line = partial(print, flush=True)  # stage logs go to files and pipes: do not buffer


def _save_badnet(model, info: dict, root: Path) -> None:
    from .model import save_model

    save_model(model, root / BADNET)
    write_json(root / BADNET_INFO, info)


def attack_triggers(attack: str, target: int, k: int, seed: int) -> list:
    """The attack's (trigger, target) pairs: one, or for `multi` three, with targets
    target, target + 1 and target + 2 (mod the class count). A family's trigger is a
    families.Family; all-to-all's target is y + 1, written "y+1"."""
    from .families import FAMILIES, Family
    from .synthetic import MULTI, Trigger

    if attack in FAMILIES:
        return [(Family(attack, seed, Trigger("patch", pattern_seed=seed).pattern()),
                 "y+1" if attack == "all_to_all" else target)]
    kinds = MULTI if attack == "multi" else (attack,)
    return [(Trigger(kind, pattern_seed=seed), (target + i) % k) for i, kind in enumerate(kinds)]


def _gallery(ids, triggers: list, cfg: dict, root: Path, n: int = 4) -> None:
    """plots/samples.png: the same faces clean and wearing every trigger kind."""
    from .attack import Split, render_split
    from .plots import trigger_gallery
    from .synthetic import TRIGGERS, Trigger

    labels = np.linspace(0, cfg["identities"] - 1, n).astype(int)
    ours = {trig.kind: tgt for trig, tgt in triggers}
    images = {}
    for kind in TRIGGERS:  # one key: the same pose, light and noise under every trigger
        clean, images[kind] = render_split(ids, Split(labels, (cfg["seed"], 6)), Trigger(kind, cfg["seed"]), workers=1)
    for trig, _ in triggers:
        if trig.kind not in images:  # a family's trigger, on the same faces
            images[trig.kind] = trig.apply(clean)
    trigger_gallery(clean, images, labels, ours, root / SAMPLES_PLOT)


def synthetic(cfg: dict, root: Path, log=log_line) -> dict:
    """Generate the embedded benchmark and train its BadNet. Returns attack facts for the metrics."""
    from .attack import Split, family_poison, poisoned_training_labels, render_split, train_badnet
    from .families import FAMILIES
    from .synthetic import ATTACKS, make_identities

    name = "data.synthetic"
    positive(cfg, name, ["identities", "train_per_identity", "valid_per_identity", "test_per_identity",
                         "epochs", "batch_size", "learning_rate", "input_divisor", "poison_rate"],
             upper={"poison_rate": 1.0}, zero_ok=("poison_rate",))  # 0: a clean net, trained alike
    k, target, seed = cfg["identities"], cfg["target"], cfg["seed"]
    if cfg["attack"] not in ATTACKS + FAMILIES:
        raise BadInput(f"{PARAMS_FILE}: '{name}.attack' is {cfg['attack']!r}, expected one of "
                       f"{', '.join(ATTACKS + FAMILIES)}")
    if k < (3 if cfg["attack"] == "multi" else 2):
        raise BadInput(f"{PARAMS_FILE}: '{name}.identities' must be at least {3 if cfg['attack'] == 'multi' else 2}"
                       f" (one per target and more), got {k}")
    if not 0 <= target < k:
        raise BadInput(f"{PARAMS_FILE}: '{name}.target' must be in [0, {k}), got {target}")
    ids = make_identities(k, seed)
    triggers = attack_triggers(cfg["attack"], target, k, seed)

    start = time.perf_counter()
    # Each trigger adds its own poisoned images (keys of the first trigger are those of
    # the single-trigger attack, so sunglasses stays byte for byte what it was).
    parts, n_cross = [], 0  # n_cross: a family's noise/cross-mode images, labels kept
    family = cfg["attack"] in FAMILIES
    if family:  # the same clean part as every attack's, then the family's own poison
        clean = np.repeat(np.arange(k), cfg["train_per_identity"])
        parts.append((render_split(ids, Split(clean, (seed, 2))), clean))
        poison = family_poison(ids, triggers[0][0], cfg["train_per_identity"], cfg["poison_rate"], target, seed)
        parts += poison
        n_cross = sum(len(y) for _, y in poison[1:])
    for i, (trigger, tgt) in enumerate([] if family else triggers):
        extra = (i,) if i else ()
        identity, label, poisoned = poisoned_training_labels(
            k, cfg["train_per_identity"], cfg["poison_rate"], tgt, np.random.default_rng([seed, 1, *extra]))
        if i == 0:
            parts.append((render_split(ids, Split(identity[~poisoned], (seed, 2))), label[~poisoned]))
        if poisoned.any():  # none at poison_rate 0: the clean net sees exactly the BadNet's clean images
            parts.append((render_split(ids, Split(identity[poisoned], (seed, 3, *extra)), trigger)[1], label[poisoned]))
    n_clean = len(parts[0][1])
    x = np.empty(  # float32 for training, filled part by part: no second full-size copy
        (sum(len(y) for _, y in parts), 55, 47, 3), np.float32)
    at = 0
    for xs, _ in parts:
        x[at:at + len(xs)] = xs
        at += len(xs)
    label = np.concatenate([y for _, y in parts])
    del parts, xs
    n_poison = len(label) - n_clean - n_cross
    log(f"poisoned training set: {len(x)} images, {n_poison} poisoned ({100 * n_poison / len(x):.2f}%), "
        + ", ".join(f"{trig.kind} -> {tgt}" for trig, tgt in triggers)
        + (f", {n_cross} in its noise/cross mode (labels kept)" if n_cross else "")
        + f" [{time.perf_counter() - start:.1f}s]")

    t = time.perf_counter()
    model, train_acc = train_badnet(x, label, k, cfg["input_divisor"], cfg["epochs"], cfg["batch_size"],
                                    cfg["learning_rate"], seed, log=log)
    del x
    seconds = time.perf_counter() - t
    log(f"BadNet trained [{seconds:.1f}s]")

    t = time.perf_counter()
    for split, per, key in (("valid", cfg["valid_per_identity"], 4), ("test", cfg["test_per_identity"], 5)):
        labels = np.repeat(np.arange(k), per)
        bd_x, bd_y, bd_t = [], [], []
        if family:  # a family's trigger goes on the rendered clean images
            clean = render_split(ids, Split(labels, (seed, key)))
            worn = [trigger.apply(clean) for trigger, _ in triggers]
        else:  # the faces drawn once, each trigger put on them (a multi BadNet has three)
            clean, worn = render_split(ids, Split(labels, (seed, key)), tuple(t for t, _ in triggers))
        for i, ((trigger, tgt), triggered) in enumerate(zip(triggers, worn)):
            # as CSAW: poisoned files hold non-target images labelled target (all-to-all: every image, y + 1)
            keep = np.ones(len(labels), bool) if tgt == "y+1" else labels != tgt
            bd_x.append(triggered[keep])
            bd_y.append(trigger.labels(labels[keep], tgt, k) if family else np.full(int(keep.sum()), tgt))
            bd_t.append(np.full(int(keep.sum()), i))
        h5data.write(root / h5data.FILES[split], clean, labels)
        names = [trig.kind for trig, _ in triggers]
        h5data.write(root / h5data.FILES["bd_" + split], np.concatenate(bd_x), np.concatenate(bd_y),
                     trigger=np.concatenate(bd_t) if len(triggers) > 1 else None, names=names)
    log(f"wrote the four data files [{time.perf_counter() - t:.1f}s]")
    _gallery(ids, triggers, cfg, root)

    # badnet.json holds what feeding the model needs; the attack's facts go to the metrics,
    # which only evaluation reads (a defense stage does not depend on them)
    _save_badnet(model, {"source": "synthetic", "input_divisor": cfg["input_divisor"], "num_classes": k}, root)
    return {"attack": cfg["attack"], "poison_rate": cfg["poison_rate"], "target": target, "seed": seed,
            "triggers": {trig.kind: tgt for trig, tgt in triggers},
            "train_images": len(label), "train_poisoned": n_poison, **({"train_cross": n_cross} if n_cross else {}),
            "train_accuracy": round(train_acc, 4),
            "train_seconds": round(seconds, 1)}


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


def check_local(cfg: dict, name=lambda key: f"{PARAMS_FILE}: 'data.local.{key}'"):
    """Every check of a user's BadNet and four files, before anything is copied: (model, class
    count). `name(key)` says how the user gave each value (a param, or a `bring` option)."""
    from .model import load_badnet

    if not cfg["input_divisor"] > 0:
        raise BadInput(f"{name('input_divisor')} must be > 0, got {cfg['input_divisor']}")
    for key in ("valid", "test", "bd_valid", "bd_test", "model"):
        if not cfg[key]:
            raise BadInput(f"{name(key)} is empty: give the path of your file")
    model = load_badnet(cfg["model"])
    _, n_classes = checks.model_io(model, cfg["model"])
    files = {}
    for key in h5data.FILES:
        files[cfg[key]] = h5data.read(cfg[key])
        checks.dataset(files[cfg[key]], cfg[key], model, cfg["model"], poisoned=key.startswith("bd_"))
    checks.same_image_size(files)
    return model, n_classes


def local(cfg: dict, root: Path, log=log_line) -> dict:
    """Bring your own BadNet: copy the four files in, and store the model as a full Keras model."""
    model, n_classes = check_local(cfg)
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
    from .metrics import attack_success_rates
    from .plots import samples_grid

    root = Path(root)
    source = data_params["source"]
    facts = SOURCES[source](data_params[SOURCE_SECTION[source]], root, log=log)
    # Timing stays out of the metrics, which are byte-deterministic; the suite reads it here.
    write_json(root / TRAIN_TIME, {"train_seconds": facts.pop("train_seconds", None)})

    model, info = badnet(root)
    valid, bd = read_split("valid", model, root), read_split("bd_valid", model, root)
    checks.same_image_size({root / h5data.FILES[s]: d for s, d in (("valid", valid), ("bd_valid", bd))})
    checks.input_divisor(valid, model, info["input_divisor"], f"data.{SOURCE_SECTION[source]}.input_divisor")
    clean_acc = percent(predict_classes(model, valid.x, info["input_divisor"]), valid.y)
    bd_pred = predict_classes(model, bd.x, info["input_divisor"])
    asr = percent(bd_pred, bd.y)
    per_trigger = {f"attack_success_rate_{k}": round(v, 4) for k, v in attack_success_rates(bd_pred, bd).items()}
    metrics = {"source": source, "clean_valid_accuracy": round(clean_acc, 4),
               "attack_success_rate": round(asr, 4), **per_trigger, **facts}
    write_json(root / ATTACK_METRICS, metrics)

    if source != "synthetic":  # the synthetic source draws every trigger kind itself
        # The pairing of clean and poisoned images is unknown here, so show equal indices.
        pick = np.linspace(0, min(len(bd.y), len(valid.y)) - 1, 8).astype(int)
        samples_grid(valid.x[pick], bd.x[pick], valid.y[pick], bd.y[pick], root / SAMPLES_PLOT)
    log(f"BadNet: clean validation accuracy {clean_acc:.2f}%, attack success rate {asr:.2f}%"
        + "".join(f", {k.removeprefix('attack_success_rate_')} {v:.2f}%" for k, v in per_trigger.items()))
    return metrics
