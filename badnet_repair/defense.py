"""What every defense shares: the defenses by name, the clean holdout, the training loop,
and the clean-only rule that picks each defense's strength.

A defense sees the clean validation images only. It trains on a seeded share of them and
keeps the rest (the holdout) to choose its one free setting: it tries its candidates from
the strongest down and keeps the first whose holdout accuracy stays within `budget`
points of B's (if none does, the one best on the holdout). The poisoned files are never read here."""
from __future__ import annotations

import importlib
import time

import numpy as np

from .errors import BadInput
from .params import PARAMS_FILE

# name -> (module, paper)
DEFENSES = {
    "fine_pruning": ("fine_pruning", "Liu, Dolan-Gavitt and Garg, Fine-Pruning, RAID 2018"),
    "ft": ("ft", "fine-tuning on clean data, the baseline of every paper below"),
    "nad": ("nad", "Li et al., Neural Attention Distillation, ICLR 2021"),
    "anp": ("anp", "Wu and Wang, Adversarial Neuron Pruning, NeurIPS 2021"),
    "rnp": ("rnp", "Li et al., Reconstructive Neuron Pruning, ICML 2023"),
    "ft_sam": ("ft_sam", "Zhu et al., Fine-Tuning with Sharpness-Aware Minimization, ICCV 2023"),
    "i_bau": ("i_bau", "Zeng et al., Adversarial Unlearning of Backdoors via Implicit Hypergradient, ICLR 2022"),
}


def module(name: str):
    from . import anp, fine_pruning, ft, ft_sam, i_bau, nad, rnp  # noqa: F401  (named, so dvc.yaml's deps see them)

    if name not in DEFENSES:
        raise BadInput(f"{PARAMS_FILE}: unknown defense {name!r} (known: {', '.join(DEFENSES)})")
    return importlib.import_module(f"{__package__}.{DEFENSES[name][0]}")


class Clean:
    """The defender's data: the clean validation images split into train and holdout."""

    def __init__(self, x, y, holdout_fraction: float, seed: int, input_divisor: float):
        from .evaluate import scale
        from .finetune import split_holdout

        train, hold = split_holdout(len(y), holdout_fraction, seed, "defend.holdout")
        self.input_divisor = input_divisor
        self.x, self.y = scale(x[train], input_divisor), y[train]
        self.x_holdout, self.y_holdout = x[hold], y[hold]  # raw: evaluation scales them
        self.raw_x, self.raw_y, self.holdout_index = x, y, hold  # fine-pruning's own loop takes these

    def holdout_accuracy(self, model) -> float:
        from .evaluate import percent, predict_classes

        return percent(predict_classes(model, self.x_holdout, self.input_divisor), self.y_holdout)


def strongest_within(candidates, make, clean: Clean, floor: float, log=print, what="setting"):
    """Try `make(c)` for candidates ordered strongest first; return (model, c, tried) for the
    first whose holdout accuracy is >= floor. If none is, the one with the best holdout
    accuracy (the first of equals): a weaker candidate need not keep more accuracy."""
    tried, best = [], None
    for c in candidates:
        model = make(c)
        acc = clean.holdout_accuracy(model)
        tried.append({what: c, "holdout_accuracy": round(acc, 4)})
        log(f"  {what} {c}: holdout accuracy {acc:.2f}% (floor {floor:.2f}%)")
        if acc >= floor:
            return model, c, tried
        if best is None or acc > best[0]:
            best = (acc, model, c)
    log(f"  no {what} keeps the floor: {best[2]} has the best holdout accuracy")
    return best[1], best[2], tried


def cross_entropy(model, xb, yb):
    from .model import keras

    return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(yb, model(xb, training=True)))


def fit(model, x, y, *, epochs: int, batch_size: int, learning_rate: float, seed: int, opt: str = "adam",
        variables=None, loss=None, masks=(), step_fn=None, log=print, what="") -> list:
    """Train `variables` (default: all of `model`'s) on (x, y), x already scaled, with the
    learning rate on a cosine to 0. loss(model, xb, yb) -> scalar (default: cross-entropy).
    masks: (variable, 0/1 tensor) pairs multiplied in after every step, so what they zero
    stays zero. step_fn(optimizer, variables, xb, yb) -> loss replaces the plain step
    (FT-SAM's two-pass step). Returns each epoch's mean loss."""
    import tensorflow as tf

    from .finetune import optimizer
    from .model import keras

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    variables = list(model.trainable_variables if variables is None else variables)
    steps = epochs * int(np.ceil(len(y) / batch_size))
    optim = optimizer(opt, keras.optimizers.schedules.CosineDecay(learning_rate, max(steps, 1)), keras)
    optim.build(variables)
    loss = loss or cross_entropy

    def plain(optim, variables, xb, yb):
        with tf.GradientTape() as tape:
            value = loss(model, xb, yb)
        optim.apply_gradients(zip(tape.gradient(value, variables), variables))
        return value

    @tf.function(reduce_retracing=True)
    def step(xb, yb):
        value = (step_fn or plain)(optim, variables, xb, yb)
        for w, m in masks:
            w.assign(w * m)
        return value

    rng = np.random.default_rng([seed, 11])
    losses, start = [], time.perf_counter()
    for epoch in range(1, epochs + 1):
        perm, total = rng.permutation(len(y)), 0.0
        for i in range(0, len(y), batch_size):
            idx = perm[i:i + batch_size]
            total += float(step(tf.constant(x[idx]), tf.constant(y[idx]))) * len(idx)
        losses.append(total / len(y))
        log(f"  {what}epoch {epoch}/{epochs}: loss {losses[-1]:.4f} [{time.perf_counter() - start:.0f}s]")
    return losses


def copy(model):
    """A copy of `model` with the same weights."""
    from .model import keras

    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    return twin


INDEX = "defense.json"  # in each defense's folder: what it chose and its holdout accuracy
TIME = "time.json"  # and its wall time, apart: the other files repeat byte for byte
DEFENDED, REPAIRED = "defended.h5", "repaired.keras"


def check(cfg: dict) -> None:
    """defend.names runs fine-pruning and the default defense always."""
    for required, why in (("fine_pruning", "fine-pruning"), (cfg["default"], "the default defense")):
        if required not in cfg["names"]:
            raise BadInput(f"{PARAMS_FILE}: 'defend.names' must include {required!r} ({why})")
    if len(set(cfg["names"])) != len(cfg["names"]):
        raise BadInput(f"{PARAMS_FILE}: 'defend.names' has duplicates: {cfg['names']}")
    if not 0 <= cfg["budget"] < 100:
        raise BadInput(f"{PARAMS_FILE}: 'defend.budget' must be in [0, 100) points, got {cfg['budget']}")
    for name, section in cfg.items():
        if name not in DEFENSES:
            continue
        for key, value in section.items():
            for v in value if isinstance(value, list) else [value]:
                bad = (key in ("fractions",) and not 0 < v < 1 or key == "thresholds" and not 0 <= v <= 1
                       or isinstance(v, (int, float)) and v < 0
                       or key in ("epochs", "batch_size", "iterations", "learning_rate", "learning_rates", "rounds", "bound",
                                  "perturbation_lr", "perturbation_batch_size", "perturbed", "clipnorm") and v <= 0)
                if bad:
                    raise BadInput(f"{PARAMS_FILE}: 'defend.{name}.{key}' has an out-of-range value {v}")


def run(name: str, model, valid, cfg: dict, input_divisor: float, out_dir, log=print) -> dict:
    """Run one defense on B with the clean validation images, and save the defended net
    (defended.h5), its G on (B, defended) (repaired.keras) and defense.json, all at once."""
    from .atomic import atomic_dir, write_json
    from .model import save_model
    from .repaired import build_repaired

    mod = module(name)
    clean = Clean(valid.x, valid.y, cfg["holdout"], cfg["seed"], input_divisor)
    badnet_holdout = clean.holdout_accuracy(model)
    floor = badnet_holdout - cfg["budget"]
    log(f"{name}: B's holdout accuracy {badnet_holdout:.2f}%, floor {floor:.2f}% "
        f"({len(clean.y)} training and {len(clean.y_holdout)} holdout images)")
    start = time.perf_counter()
    defended, facts = mod.defend(model, clean, dict(cfg[name], seed=cfg["seed"]), floor, log=log)
    seconds = time.perf_counter() - start
    entry = {"defense": name, "paper": DEFENSES[name][1],
             "badnet_holdout_accuracy": round(badnet_holdout, 4), "floor": round(floor, 4),
             "holdout_accuracy": round(clean.holdout_accuracy(defended), 4), **facts}
    with atomic_dir(out_dir) as tmp:
        save_model(defended, tmp / DEFENDED)
        save_model(build_repaired(model, defended), tmp / REPAIRED)
        write_json(tmp / INDEX, entry)
        write_json(tmp / TIME, {"seconds": round(seconds, 1)})
    log(f"{name}: holdout accuracy {entry['holdout_accuracy']:.2f}% after {seconds:.0f}s")
    return entry


def score(name: str, folder, badnet_pred: dict, test, bd_test, input_divisor: float, stage: str) -> dict:
    """One defense on the test files: the defended net's clean accuracy and ASR (the highest
    over the triggers of a multi-trigger file), its G's detection and false-positive rates."""
    from pathlib import Path

    from .evaluate import percent, predict_classes
    from .metrics import attack_success_rates
    from .model import load_badnet
    from .repaired import flagged

    folder = Path(folder)
    if not (folder / INDEX).is_file():
        raise BadInput(f"{folder / INDEX}: not found; run the {stage} stage first")
    net = load_badnet(folder / DEFENDED)
    p_test, p_bd = predict_classes(net, test.x, input_divisor), predict_classes(net, bd_test.x, input_divisor)
    asr = max([percent(p_bd, bd_test.y)] + list(attack_success_rates(p_bd, bd_test).values()))
    return {f"{name}_clean_accuracy_test": percent(p_test, test.y),
            f"{name}_attack_success_rate_test": asr,
            f"{name}_detection_rate_test": flagged(badnet_pred["bd_test"], p_bd),
            f"{name}_false_positive_rate_test": flagged(badnet_pred["test"], p_test)}
