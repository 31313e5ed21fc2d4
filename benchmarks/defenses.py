"""Benchmark: each defense's wall time on one BadNet, side by side in one run.

    python benchmarks/defenses.py                      # the default pipeline's BadNet (dvc repro first)
    python benchmarks/defenses.py --name sunglasses-2020 --write   # ... and record the rows
    python benchmarks/defenses.py --root suite/badnets/patch-2020 --defenses anp rnp
    python benchmarks/defenses.py --root suite/badnets/sunglasses-2021 --defenses ft --compare 5f45814

Each defense runs as `defend@NAME` does (params.yaml's defend section, the clean validation
file only), into a temporary folder. Prints, per defense, its seconds, their ratio to FT's
and to the 90 s budget per BadNet (issue 23), and the holdout accuracy it kept; --write puts
those rows in benchmarks/results/defense_solo.csv with the CPU (a run alone on the machine).

With --compare REV, each defense also runs under the defend section of params.yaml at git
revision REV (before the current one), and it prints both times, their ratio, the setting
each kept and whether the two defended nets have the same weights; --write puts those rows
in benchmarks/results/defense_compare.csv with the CPU.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # docs: machine(), record()

import docs  # noqa: E402
from badnet_repair import artifacts, defenses, params  # noqa: E402
from badnet_repair.defenses import base  # noqa: E402
from badnet_repair.model import load_badnet  # noqa: E402

BUDGET_S = 90.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=".", help="a project folder with models/ and data/ (default: .)")
    ap.add_argument("--defenses", nargs="+", default=defenses.names())
    ap.add_argument("--compare", metavar="REV", help="a git revision: each defense also runs under its params.yaml")
    ap.add_argument("--write", action="store_true", help="record the rows (run alone on the machine)")
    ap.add_argument("--name", help="the BadNet's name in the rows (default: the folder's)")
    args = ap.parse_args()
    cfg = params.load("defend")
    if args.compare:
        old = subprocess.run(["git", "show", f"{args.compare}:params.yaml"], capture_output=True, text=True,
                             check=True, cwd=Path(__file__).resolve().parents[1]).stdout
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            f.write(old)
            f.flush()
            return compare(args, cfg, params.load("defend", f.name))
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
    if args.write:
        badnet = args.name or root.name
        docs.record("defense_solo", [{"key": f"{badnet}:{name}:{docs.machine()}", "badnet": badnet, "defense": name,
                                      "seconds": round(sec), "budget_ratio": round(sec / BUDGET_S, 2),
                                      "kept": kept(e), "cpu": docs.machine()} for name, (sec, e) in rows.items()])


def kept(entry: dict) -> str:
    chosen = {k: v for k, v in entry.items() if k in ("learning_rate", "threshold", "fraction_pruned")}
    return " ".join(f"{k} {v}" for k, v in chosen.items())


def compare(args, cfg: dict, old: dict) -> None:
    root = Path(args.root).resolve()
    model, info = artifacts.badnet(root)
    valid = artifacts.read_split("valid", model, root)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.defenses:
            module, got = defenses.load(name), {}
            for which, c in (("before", old), ("after", cfg)):
                section = base.settings(name, module, c, model, params.load("prune")["layer"], params.load("scan"))
                start = time.perf_counter()
                entry = base.run(name, module, model, valid, c, section, info["input_divisor"],
                                 Path(tmp) / which / name, log=lambda s: None)
                got[which] = (time.perf_counter() - start, entry,
                              load_badnet(Path(tmp) / which / name / base.DEFENDED).get_weights())
            same = all(np.array_equal(a, b) for a, b in zip(got["before"][2], got["after"][2]))
            rows.append({"key": f"{root.name}:{name}:{args.compare}", "badnet": root.name, "defense": name,
                         "before": f"params.yaml at {args.compare}",
                         "seconds_before": round(got["before"][0]), "seconds_after": round(got["after"][0]),
                         "ratio": round(got["after"][0] / got["before"][0], 2),
                         "kept_before": kept(got["before"][1]), "kept_after": kept(got["after"][1]),
                         "same_weights": same, "cpu": docs.machine()})
            print(rows[-1], flush=True)
    if args.write:
        docs.record("defense_compare", rows)


if __name__ == "__main__":
    main()
