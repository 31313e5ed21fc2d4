"""Benchmark (tuning BadNets only): what the holdout's split does to the clean loss it reads.
Runs I-BAU as `defend@i_bau` runs it twice on each BadNet folder, once with the pipeline's
per-image split (training.split_holdout without labels: a seeded shuffle, the first
round(fraction * n) images held out; fine-pruning's, and the defenses' until the study) and once
with the defenses' split, stratified by class (each class holds out its share, floor or one more,
the larger remainders first, ties in a seeded order), and prints for each B's and
the defended net's accuracy on the training share, the holdout and the test file, and the
defended net's test accuracy by how many images of each class it trained on.

    python benchmarks/holdout_split.py suite/badnets/sunglasses-2029 --out

--out appends to benchmarks/results/holdout_split.csv with the CPU. Reads test files: it
explains a clean measure, it chooses nothing.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))  # docs: append() writes the rows, with the CPU

import docs  # noqa: E402
from badnet_repair import artifacts, defenses, params, scan, training  # noqa: E402
from badnet_repair.defenses import base  # noqa: E402
from badnet_repair.evaluate import percent, predict_classes  # noqa: E402
from badnet_repair.model import keras  # noqa: E402


SPLITS = {"per image": lambda labels, *a: training.split_holdout(len(labels), *a),  # fine-pruning's
          "stratified": lambda labels, *a: training.split_holdout(len(labels), *a, labels=labels)}  # the defenses'


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("roots", nargs="+", type=Path, help="suite BadNet folders (models/, data/)")
    ap.add_argument("--out", action="store_true")
    args = ap.parse_args()
    cfg = params.load("defend")
    module = defenses.load("i_bau")
    for root in args.roots:
        model, info = artifacts.badnet(root)
        div = info["input_divisor"]
        valid, test = artifacts.read_split("valid", model, root), artifacts.read_split("test", model, root)
        section = base.settings("i_bau", module, cfg, model, params.load("prune")["layer"],
                                scan.check(params.load("scan")))
        b_valid, b_test = predict_classes(model, valid.x, div), predict_classes(model, test.x, div)
        for name, split in SPLITS.items():
            train, hold = split(valid.y, cfg["holdout"], cfg["seed"])
            base.split_holdout = lambda n, *a, labels, split=split: split(labels, *a)  # base.Clean's split
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    base.run("i_bau", module, model, valid, cfg, section, div, Path(tmp) / "i_bau")
                    fixed = keras.models.load_model(Path(tmp) / "i_bau" / base.DEFENDED, compile=False)
            finally:
                base.split_holdout = training.split_holdout
            f_valid, f_test = predict_classes(fixed, valid.x, div), predict_classes(fixed, test.x, div)
            trained = np.bincount(valid.y[train], minlength=int(test.y.max()) + 1)[test.y]  # per test image
            row = {"badnet": root.name, "split": name, "holdout_images": len(hold),
                   "trained_per_class": f"{trained.min()}-{trained.max()}"}
            for what, pv, pt in (("badnet", b_valid, b_test), ("defended", f_valid, f_test)):
                row[f"{what}_train"] = round(percent(pv[train], valid.y[train]), 2)
                row[f"{what}_holdout"] = round(percent(pv[hold], valid.y[hold]), 2)
                row[f"{what}_test"] = round(percent(pt, test.y), 2)
            row["defended_test_by_trained"] = " ".join(
                f"{c}:{percent(f_test[trained == c], test.y[trained == c]):.1f}/{int(np.sum(trained == c))}"
                for c in np.unique(trained))
            print(row)
            if args.out:
                docs.append("holdout_split", row)


if __name__ == "__main__":
    main()
