"""Benchmark: each defense's wall time on one BadNet, side by side in one run.

    python benchmarks/defenses.py                      # the default pipeline's BadNet (dvc repro first)
    python benchmarks/defenses.py --root suite/badnets/patch-2020 --defenses anp rnp

Each defense runs as `defend@NAME` does (params.yaml's defend section, the clean validation
file only), into a temporary folder. Prints, per defense, its seconds, their ratio to FT's
and to the 180 s budget per BadNet, and the holdout accuracy it kept. Nothing is written
to the project.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from badnet_repair import artifacts, defenses, params
from badnet_repair.defenses import base

BUDGET_S = 180.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=".", help="a project folder with models/ and data/ (default: .)")
    ap.add_argument("--defenses", nargs="+", default=defenses.names())
    args = ap.parse_args()
    cfg = params.load("defend")
    root = Path(args.root).resolve()
    model, info = artifacts.badnet(root)
    valid = artifacts.read_split("valid", model, root)
    print(f"{root}: {len(valid.y)} clean validation images, {info['num_classes']} classes, "
          f"{os.cpu_count()} CPUs")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.defenses:
            start = time.perf_counter()
            module = defenses.load(name)
            section = base.settings(name, module, cfg, model, params.load("prune")["layer"], params.load("scan"))
            entry = base.run(name, module, model, valid, cfg, section, info["input_divisor"], Path(tmp) / name,
                             log=lambda s: None)
            rows[name] = (time.perf_counter() - start, entry)
    ref = rows.get("ft", next(iter(rows.values())))[0]
    print(f"\n| defense | seconds (with saving) | / FT | / {BUDGET_S:.0f} s budget | holdout accuracy % (B's) |")
    print("|---|---:|---:|---:|---:|")
    for name, (sec, e) in rows.items():
        print(f"| {name} | {sec:.0f} | {sec / ref:.2f} | {sec / BUDGET_S:.2f} | "
              f"{e['holdout_accuracy']:.2f} ({e['badnet_holdout_accuracy']:.2f}) |")


if __name__ == "__main__":
    main()
