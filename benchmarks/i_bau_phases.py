"""Where I-BAU's time goes: one `defend@i_bau` run per net (params.yaml's defend section, the
clean validation file only, into a temporary folder), with each phase timed by wrapping the
functions it calls. A phase's time excludes the phases it calls (the scan's own searches count
as the scan).

    python benchmarks/i_bau_phases.py NAME=ROOT [...] [--beside WHAT] [--set JSON]

ROOT is a project folder with models/ and data/ (`.` after `dvc repro`, or a suite net's
folder). --set changes keys of defend.i_bau (name such a run apart: NAME is the rows' key).
Rows go to benchmarks/results/i_bau_phases.csv: per net and phase, its seconds, calls and share
of the run, with the CPU."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import docs  # noqa: E402

from badnet_repair import artifacts, defenses, evaluate, params, scan, training  # noqa: E402
from badnet_repair.defenses import base, i_bau  # noqa: E402

_stack: list = []


def timed(owner, attr: str, phase, totals: dict):
    """Wrap owner.attr so its exclusive time (less the timed calls inside it) adds to
    totals[phase(args, kwargs)]; returns a function that restores it."""
    original = getattr(owner, attr)

    def wrapper(*args, **kwargs):
        name = SCAN if any(n == SCAN for n, _ in _stack) else phase(args, kwargs)  # within the scan: the scan's
        _stack.append([name, 0.0])
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent = time.perf_counter() - start
            inner = _stack.pop()[1]
            if _stack:
                _stack[-1][1] += spent
            seconds, calls = totals.get(name, (0.0, 0))
            totals[name] = (seconds + spent - inner, calls + (name == phase(args, kwargs)))

    setattr(owner, attr, wrapper)
    return lambda: setattr(owner, attr, original)


def fit_phase(args, kwargs):
    return "training: one round's epoch" if kwargs.get("epochs") == 1 else "training: the recovery"


SCAN = "the scan of B"
PHASES = [(scan, "scan", lambda a, k: SCAN),
          (i_bau, "perturbation", lambda a, k: "rounds: untargeted search"),
          (scan, "universal_perturbation", lambda a, k: "rounds: targeted and offset searches"),
          (scan, "holdout_share", lambda a, k: "rounds: holdout shares"),
          (evaluate, "predict_classes", lambda a, k: "predictions (rounds and holdout accuracy)"),
          (training, "fit", fit_phase),
          (training, "copy", lambda a, k: "copying B")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("nets", nargs="+", help="NAME=ROOT")
    ap.add_argument("--beside", default="nothing", help="what else ran on the machine meanwhile")
    ap.add_argument("--set", default="{}", help="JSON: keys of defend.i_bau to change")
    args = ap.parse_args()
    cfg = params.load("defend")
    cfg["i_bau"].update(json.loads(args.set))
    rows = []
    for spec in args.nets:
        name, root = spec.split("=")
        model, info = artifacts.badnet(Path(root))
        valid = artifacts.read_split("valid", model, Path(root))
        module = defenses.load("i_bau")
        section = base.settings("i_bau", module, cfg, model, params.load("prune")["layer"], params.load("scan"))
        totals: dict = {}
        restore = [timed(owner, attr, phase, totals) for owner, attr, phase in PHASES]
        try:
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                entry = base.run("i_bau", module, model, valid, cfg, section, info["input_divisor"],
                                 Path(tmp) / "i_bau", log=lambda s: None)
                total = time.perf_counter() - start
        finally:
            for r in restore:
                r()
        totals["the rest (loading, saving, the defense's own steps)"] = (total - sum(s for s, _ in totals.values()), 1)
        rounds = sum(1 for p in entry["perturbations"] if p["trained"])
        for phase, (seconds, calls) in totals.items():
            rows.append({"key": f"{name}/{phase}", "net": name, "phase": phase, "seconds": round(seconds, 1),
                         "calls": calls, "share": round(100 * seconds / total, 1), "run_seconds": round(total, 1),
                         "rounds_trained": rounds, "beside": args.beside, "cpu": docs.machine()})
            print(f"{name}: {phase}: {seconds:.1f} s in {calls} calls ({100 * seconds / total:.0f} %)", flush=True)
        print(f"{name}: {total:.0f} s, {rounds} rounds trained, holdout {entry['holdout_accuracy']:.2f} %", flush=True)
    docs.record("i_bau_phases", rows)


if __name__ == "__main__":
    main()
