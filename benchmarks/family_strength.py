"""Benchmark: how strong each trigger family's BadNet is at CSAW scale (params.yaml's
data.synthetic, 1283 identities), with a family constant of badnet_repair/families.py
changed by NAME=VALUE, on a calibration net (seed 2024, target 300) that is in no suite set.

    python benchmarks/family_strength.py wanet:0.1 wanet:0.1:WANET_S=1.0 ssba:0.1:SSBA_CELL=3 --write

Each argument is ATTACK:POISON_RATE[:NAME=VALUE...], NAME a constant of families.py or
`epochs` (data.synthetic's, the BadNet's training). Prints the BadNet's clean validation
accuracy and ASR (validation) and the drawing and training time; --write puts them in
benchmarks/results/family_strength.csv with the CPU (a rerun of a setting replaces its row).
It measures the attack, not a defense: the strength bar (95 % clean, 99 % ASR) is the attacker's, and the constants chosen from it
are the attacker's, as the issue asks ("make it stronger as an attacker would").
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))  # docs: machine()

import docs  # noqa: E402
from badnet_repair import families, params, sources  # noqa: E402
from badnet_repair.artifacts import TRAIN_TIME  # noqa: E402

SEED, TARGET = 2024, 300  # not a suite net's
# the constants that set each family's strength, written out in every row
KNOBS = {"wanet": ["WANET_K", "WANET_S"], "lf": ["LF_CUTOFF", "LF_AMPLITUDE"], "ssba": ["SSBA_AMPLITUDE", "SSBA_CELL"],
         "input_aware": ["INPUT_AWARE_DENSITY"], "all_to_all": [], "clean_label": ["CLEAN_LABEL_TAU"]}


def setting(attack: str, epochs: int, default_epochs: int) -> str:
    knobs = [f"{k}={getattr(families, k):g}" for k in KNOBS[attack]]
    return " ".join(knobs + ([f"epochs={epochs}"] if epochs != default_epochs else [])) or "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("specs", nargs="+", help="ATTACK:POISON_RATE[:NAME=VALUE...]")
    ap.add_argument("--beside", default="nothing", help="what ran beside it, for the CSV")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    base = params.load("data")["synthetic"]
    for spec in args.specs:
        attack, rate, *changes = spec.split(":")
        importlib.reload(families)  # each spec from the module's own constants
        cfg = dict(base, attack=attack, poison_rate=float(rate), seed=SEED, target=TARGET % base["identities"])
        for change in changes:
            name, value = change.split("=")
            if name == "epochs":
                cfg["epochs"] = int(value)
            elif hasattr(families, name):
                setattr(families, name, type(getattr(families, name))(float(value)))  # an int stays an int
            else:
                sys.exit(f"{spec}: {name!r} is neither `epochs` nor a constant of families.py")
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            m = sources.fetch({"source": "synthetic", "synthetic": cfg}, Path(tmp), log=lambda s: None)
            seconds = time.perf_counter() - start
            trained = json.loads((Path(tmp) / TRAIN_TIME).read_text())["train_seconds"]
        knobs = setting(attack, cfg["epochs"], base["epochs"])
        row = {"key": f"{attack}:{float(rate):g}:{knobs}", "attack": attack, "poison_rate": float(rate),
               "setting": knobs,
               "clean_accuracy_valid": round(m["clean_valid_accuracy"], 2),
               "attack_success_rate_valid": round(m["attack_success_rate"], 2),
               "train_poisoned": m["train_poisoned"], "train_cross": m.get("train_cross", 0),
               "train_seconds": round(trained), "seconds": round(seconds), "beside": args.beside,
               "cpu": docs.machine()}
        print(row, flush=True)
        if args.write:
            docs.record("family_strength", [row])


if __name__ == "__main__":
    main()
