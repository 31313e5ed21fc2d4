"""What every defense shares: the interface, the clean holdout, the clean-only choice rule,
the check of its params, and running and scoring it. The one loss and the one training loop
are badnet_repair.training's (fine-pruning outside this package trains through them too).

A defense sees the clean validation images only. It trains on a seeded share of them and
keeps the rest (the holdout) to choose its one free setting: it tries its candidates from
the strongest down and keeps the first whose holdout accuracy stays within `budget` points
of B's (if none does, the one best on the holdout). The poisoned files are never read here."""
from __future__ import annotations

import time
from typing import Callable, Protocol

import numpy as np

from ..errors import BadInput
from ..params import PARAMS_FILE, check_section
from ..training import split_holdout

PIXEL_MAX = 255.0  # raw images are 0-255: a defense's bounds, steps and noise are on x / 255


class Defense(Protocol):
    """What a defense module, defenses/NAME.py, defines."""

    PAPER: str  # the paper, as the report cites it
    PARAMS: dict  # the schema of its params section, defend.NAME (params.SCHEMA's form)
    # optional: USES_SCAN = True, and its cfg also holds the scan's params (cfg["scan"])

    def check(self, model, cfg: dict, prune_layer: str) -> dict:
        """The section, checked against this model before any work, with what it leaves to
        the model filled in (layers found from the graph). BadInput naming the param."""

    def defend(self, model, clean: "Clean", cfg: dict, floor: float, log: Callable = print) -> tuple:
        """(the defended net, a dict of what it chose) from B and the clean images alone."""


class Clean:
    """The defender's data: the clean validation images split into train and holdout.
    x is fed to the model as is (x / input_divisor); `unit` is how far one step of a
    [0, 1] image moves it, so a bound on [0, 1] images is bound * unit in the model's units."""

    def __init__(self, x, y, holdout_fraction: float, seed: int, input_divisor: float):
        from ..evaluate import scale

        train, hold = split_holdout(len(y), holdout_fraction, seed, "defend.holdout", labels=y)  # stratified
        self.input_divisor = float(input_divisor)
        self.unit = np.float32(PIXEL_MAX / self.input_divisor)
        self.x, self.y = scale(x[train], input_divisor), y[train]
        self.x_holdout, self.y_holdout = x[hold], y[hold]  # raw: evaluation scales them

    def holdout_accuracy(self, model) -> float:
        from ..evaluate import percent, predict_classes

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


# Range rules by key, for every defense's section: a value of a listed key must be > 0
# (every number must be >= 0); fractions lie in (0, 1), mask thresholds and shares in [0, 1].
POSITIVE = ("epochs", "batch_size", "iterations", "learning_rate", "learning_rates", "rounds", "bound",
            "perturbation_lr", "perturbation_batch_size", "perturbed", "clipnorm", "stop_rounds")


def check_shared(cfg: dict) -> None:
    """The params every defense stage reads: defend.holdout, seed and budget."""
    if not 0 <= cfg["budget"] < 100:
        raise BadInput(f"{PARAMS_FILE}: 'defend.budget' must be in [0, 100) points, got {cfg['budget']}")
    split_holdout(1000, cfg["holdout"], cfg["seed"], "defend.holdout")


def check_section_ranges(name: str, section: dict) -> None:
    for key, value in section.items():
        for v in value if isinstance(value, list) else [value]:
            if not isinstance(v, (int, float)):
                continue
            if (key == "fractions" and not 0 < v < 1 or key in ("thresholds", "stop_share") and not 0 <= v <= 1
                    or v < 0 or key in POSITIVE and v <= 0):
                raise BadInput(f"{PARAMS_FILE}: 'defend.{name}.{key}' has an out-of-range value {v}")


def settings(name: str, module, cfg: dict, model, prune_layer: str, scan_cfg: dict | None = None) -> dict:
    """Defense `name`'s section of the defend params, checked (schema, ranges, then against
    the model: layers, output) before any work, with the shared seed added, and the scan's
    params (checked by the caller) for a module that runs the scan (USES_SCAN)."""
    from ..training import outputs_logits

    check_shared(cfg)
    if name not in cfg:
        raise BadInput(f"{PARAMS_FILE}: missing param 'defend.{name}'")
    section = check_section(f"defend.{name}", cfg[name], module.PARAMS)
    check_section_ranges(name, section)
    outputs_logits(model)  # a model whose outputs are neither probabilities nor logits is refused here
    section = dict(module.check(model, section, prune_layer), seed=cfg["seed"])
    if getattr(module, "USES_SCAN", False):
        if scan_cfg is None:
            raise BadInput(f"defense {name!r} runs the scan: its params (the 'scan' section) are needed")
        section["scan"] = scan_cfg
    return section


INDEX = "defense.json"  # in each defense's folder: what it chose and its holdout accuracy
TIME = "time.json"  # and its wall time, apart: the other files repeat byte for byte
DEFENDED, REPAIRED = "defended.h5", "repaired.keras"


def run(name: str, module, model, valid, cfg: dict, section: dict, input_divisor: float, out_dir, log=print) -> dict:
    """Run one defense on B with the clean validation images, and save the defended net
    (defended.h5), its G on (B, defended) (repaired.keras) and defense.json, all at once."""
    from ..atomic import atomic_dir, write_json
    from ..model import save_model
    from ..repaired import build_repaired

    clean = Clean(valid.x, valid.y, cfg["holdout"], cfg["seed"], input_divisor)
    badnet_holdout = clean.holdout_accuracy(model)
    floor = badnet_holdout - cfg["budget"]
    log(f"{name}: B's holdout accuracy {badnet_holdout:.2f}%, floor {floor:.2f}% "
        f"({len(clean.y)} training and {len(clean.y_holdout)} holdout images)")
    start = time.perf_counter()
    defended, facts = module.defend(model, clean, section, floor, log=log)
    seconds = time.perf_counter() - start
    entry = {"defense": name, "paper": module.PAPER,
             "badnet_holdout_accuracy": round(badnet_holdout, 4), "floor": round(floor, 4),
             "holdout_accuracy": round(clean.holdout_accuracy(defended), 4), **facts}
    with atomic_dir(out_dir) as tmp:
        save_model(defended, tmp / DEFENDED)
        save_model(build_repaired(model, defended), tmp / REPAIRED)
        write_json(tmp / INDEX, entry)
        write_json(tmp / TIME, {"seconds": round(seconds, 1)})
    log(f"{name}: holdout accuracy {entry['holdout_accuracy']:.2f}% after {seconds:.0f}s")
    return entry


def score(name: str, folder, badnet_pred: dict, test, bd_test, input_divisor: float, stage: str,
          targets=None, shifts=()) -> dict:
    """One defense on the test files: the defended net's clean accuracy and ASR (the highest
    over the triggers of a multi-trigger file), its G's detection and false-positive rates,
    and, given the scan's `targets` (and `shifts`) on B, the scan-gated detector's."""
    from pathlib import Path

    from ..evaluate import percent, predict_classes
    from ..metrics import attack_success_rates
    from ..model import load_badnet
    from ..repaired import flagged

    folder = Path(folder)
    if not (folder / INDEX).is_file():
        raise BadInput(f"{folder / INDEX}: not found; run the {stage} stage first")
    net = load_badnet(folder / DEFENDED)
    p_test, p_bd = predict_classes(net, test.x, input_divisor), predict_classes(net, bd_test.x, input_divisor)
    asr = max([percent(p_bd, bd_test.y)] + list(attack_success_rates(p_bd, bd_test).values()))
    out = {f"{name}_clean_accuracy_test": percent(p_test, test.y),
           f"{name}_attack_success_rate_test": asr,
           f"{name}_detection_rate_test": flagged(badnet_pred["bd_test"], p_bd),
           f"{name}_false_positive_rate_test": flagged(badnet_pred["test"], p_test)}
    if targets is not None:
        gate = dict(targets=targets, shifts=shifts, num_classes=int(net.output_shape[-1]))
        out.update({f"{name}_detector_detection_rate_test": flagged(badnet_pred["bd_test"], p_bd, **gate),
                    f"{name}_detector_false_positive_rate_test": flagged(badnet_pred["test"], p_test, **gate)})
    return out


def check_names(cfg: dict, known: list) -> None:
    """defend.names (read by evaluate-defenses, not by a defense): registered, distinct, and
    holding fine-pruning and the default defense."""
    for name in cfg["names"] + [cfg["default"]]:
        if name not in known:
            raise BadInput(f"{PARAMS_FILE}: unknown defense {name!r} in 'defend.names' or 'defend.default' "
                           f"(known: {', '.join(known)})")
    for required, why in (("fine_pruning", "fine-pruning"), (cfg["default"], "the default defense")):
        if required not in cfg["names"]:
            raise BadInput(f"{PARAMS_FILE}: 'defend.names' must include {required!r} ({why})")
    if len(set(cfg["names"])) != len(cfg["names"]):
        raise BadInput(f"{PARAMS_FILE}: 'defend.names' has duplicates: {cfg['names']}")
