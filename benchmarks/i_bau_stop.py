"""Benchmark (tuning BadNets only): I-BAU as `defend@i_bau` runs it, with params.yaml's
defend section changed by --set, on suite BadNet folders; scored on their test files.

    python benchmarks/i_bau_stop.py suite/badnets/sunglasses-2021 --set '{"stop_share": 0.0}'
    python benchmarks/i_bau_stop.py sunglasses-2020=.   # the default pipeline's BadNet (dvc repro first)

Prints, per BadNet, B's and the defended net's clean accuracy and ASR (test), the rounds
trained, the learning rate kept and the wall time; --write appends them to
benchmarks/results/i_bau_stop.csv with the CPU (--out i_bau_speed: to the speed study's file;
--out i_bau_bound: to the worn-trigger study's; --out i_bau_evaluation: evaluation BadNets, run
only after a choice is made); --entries keeps each run's defense.json entry. Reads test files:
it is an evaluation, for choosing on BadNets of the tuning set (docs/defenses.md) and for
reporting a choice on the evaluation set, never for choosing there.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))  # docs: append() writes the rows, with the CPU

import docs  # noqa: E402
from badnet_repair import artifacts, defenses, params, scan  # noqa: E402
from badnet_repair.defenses import base  # noqa: E402
from badnet_repair.evaluate import percent, predict_classes  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("roots", nargs="+", help="suite BadNet folders (models/, data/), or NAME=FOLDER (the root)")
    ap.add_argument("--set", default="{}", help="JSON: keys of defend.i_bau to change")
    ap.add_argument("--variant", default="params.yaml", help="the name of this setting in the CSV")
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--out", default="i_bau_stop", choices=["i_bau_stop", "i_bau_speed", "i_bau_bound",
                                                              "i_bau_evaluation"],
                    help="the results file")
    ap.add_argument("--entries", type=Path, help="a folder for each BadNet's defense.json entry, as NAME.json")
    ap.add_argument("--seed", type=int, help="defend.seed instead of params.yaml's (the holdout and the training's order)")
    args = ap.parse_args()
    cfg = params.load("defend")
    cfg["i_bau"].update(json.loads(args.set))
    if args.seed is not None:
        cfg["seed"] = args.seed
    module = defenses.load("i_bau")
    for arg in args.roots:
        name, _, folder = arg.rpartition("=")
        root = Path(folder)
        model, info = artifacts.badnet(root)
        div = info["input_divisor"]
        valid = artifacts.read_split("valid", model, root)
        section = base.settings("i_bau", module, cfg, model, params.load("prune")["layer"],
                                scan.check(params.load("scan")))
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            entry = base.run("i_bau", module, model, valid, cfg, section, div, Path(tmp) / "i_bau")
            seconds = time.perf_counter() - start
            test, bd = artifacts.read_split("test", model, root), artifacts.read_split("bd_test", model, root)
            pred = {"test": predict_classes(model, test.x, div), "bd_test": predict_classes(model, bd.x, div)}
            s = base.score("i_bau", Path(tmp) / "i_bau", pred, test, bd, div, "defend@i_bau")
        trained = sum(r["trained"] for r in entry["perturbations"])
        row = {"badnet": name or root.name, "variant": args.variant,
               "badnet_clean_accuracy_test": round(percent(pred["test"], test.y), 2),
               "badnet_attack_success_rate_test": round(percent(pred["bd_test"], bd.y), 2),
               "clean_accuracy_test": round(s["i_bau_clean_accuracy_test"], 2),
               "attack_success_rate_test": round(s["i_bau_attack_success_rate_test"], 2),
               "rounds_trained": trained, "learning_rate": entry["learning_rate"],
               "holdout_accuracy": entry["holdout_accuracy"], "floor": entry["floor"], "seconds": round(seconds)}
        print(row)
        if args.entries:
            args.entries.mkdir(parents=True, exist_ok=True)
            (args.entries / f"{row['badnet']}.json").write_text(json.dumps(entry, indent=1, default=str))
        if args.write:
            docs.append(args.out, row)


if __name__ == "__main__":
    main()
