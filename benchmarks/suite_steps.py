"""Benchmark: one suite BadNet's stages (badnet@, prune@, defend@) with their steps run in
the stage's own Python (suite.run_stages, the default) against a new Python per step
(BADNET_REPAIR_STEP_PROCESSES=1), side by side in one run, in a temporary clone on the
small preset; and whether the two make the same bytes.

    python benchmarks/suite_steps.py [--write]

--write puts the figures in benchmarks/results/suite_steps.csv with the CPU.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))  # docs: machine(), record()

import docs  # noqa: E402
from badnet_repair import suite  # noqa: E402

NAME = "patch-1"  # tests/test_suite.py's small-suite patch BadNet
ENTRY = {"attack": "patch", "seed": 1, "target": 3, "poison_rate": 0.15}
TIMES = ("train_time.json", "time.json", "defense_times.json")  # wall times differ run to run


def run(repo: Path, own: bool) -> float:
    env = dict(os.environ, **{suite.STEP_PROCESSES: "1" if own else "0"})
    shutil.rmtree(repo / suite.BADNETS / NAME, ignore_errors=True)
    start = time.perf_counter()
    for stage in ("suite_badnet", "suite_prune", "suite_defend"):
        subprocess.run([sys.executable, f"stages/{stage}.py", NAME], cwd=repo, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def md5s(repo: Path) -> dict:
    folder = repo / suite.BADNETS / NAME
    return {str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name not in TIMES}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--beside", default="nothing", help="what ran beside it, for the CSV")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
        shutil.copyfile(repo / "presets/small.yaml", repo / "params.yaml")
        (repo / suite.SUITE_PARAMS).write_text(yaml.safe_dump(
            {"badnets": {NAME: ENTRY}, "defenses": ["fine_pruning", "ft"], "tuning": [NAME]}, sort_keys=False))
        here = run(repo, own=False)
        files = md5s(repo)
        own = run(repo, own=True)
        same = md5s(repo) == files
    row = {"key": f"small:{NAME}", "net": f"{NAME} (small preset, fine_pruning and ft)",
           "one_python_seconds": round(here, 1), "python_per_step_seconds": round(own, 1),
           "ratio": round(here / own, 2), "same_bytes": "yes" if same else "no", "files": len(files),
           "beside": args.beside, "cpu": docs.machine()}
    print(f"{NAME}: one Python {here:.1f} s, a Python per step {own:.1f} s, ratio {here / own:.2f}, "
          f"same bytes: {row['same_bytes']} ({len(files)} files)")
    if args.write:
        docs.record("suite_steps", [row])
    if not same:
        sys.exit("the two ways made different bytes")


if __name__ == "__main__":
    main()
