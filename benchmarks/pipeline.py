"""Whole-pipeline timings, in a temporary git clone of this repository:

    python benchmarks/pipeline.py                 # the default params (20 to 35 minutes on 2 cores, by CPU)
    python benchmarks/pipeline.py --preset small  # presets/small.yaml (about 2 minutes)
    python benchmarks/pipeline.py --preset small --rev e1c3c62   # the same at an earlier commit
    python benchmarks/pipeline.py --out --beside nothing         # and record it (benchmarks/results/pipeline.csv)

Measures the whole `dvc repro` from scratch (and each stage in it), a no-op `dvc repro`,
a `dvc repro` after dropping the last of `prune.thresholds`, then after putting it back
(DVC's run-cache has seen that run), and prints a markdown table.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "tools"))  # docs: machine(), record()

import docs  # noqa: E402


def timed(cmd, cwd, env, echo=False):
    """Run `cmd`; return (seconds, [(stage, seconds)]) from its 'Running stage' lines."""
    start = time.perf_counter()
    stages, current, began = [], None, start
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if echo:
            print("    " + line.rstrip(), flush=True)
        # progress bars end in \r, not \n: a stage line can share a "line" with them
        for m in re.finditer(r"Running stage '([\w@.-]+)'", line):
            now = time.perf_counter()
            if current:
                stages.append((current, now - began))
            current, began = m.group(1), now
    if proc.wait():
        sys.exit(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    end = time.perf_counter()
    if current:
        stages.append((current, end - began))
    return end - start, stages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=["default", "small"], default="default")
    ap.add_argument("--echo", action="store_true", help="show the stages' own output")
    ap.add_argument("--rev", default="HEAD", help="the commit to time (default: HEAD)")
    ap.add_argument("--out", action="store_true", help="record the figures in benchmarks/results/pipeline.csv")
    ap.add_argument("--beside", default="nothing", help="what ran beside it, for the CSV")
    args = ap.parse_args()
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    dvc = str(BIN / "dvc")
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
        subprocess.run(["git", "checkout", "-q", args.rev], cwd=repo, check=True)
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, check=True, capture_output=True,
                             text=True).stdout.strip()
        env["PYTHONPATH"] = str(repo)  # the clone's package, not the one installed from this checkout
        if args.preset == "small":
            shutil.copyfile(repo / "presets" / "small.yaml", repo / "params.yaml")
        print(f"timing `dvc repro` ({args.preset} params) in a clone of {ROOT}, {os.cpu_count()} cores", flush=True)
        full, stages = timed([dvc, "repro"], repo, env, args.echo)
        noop, _ = timed([dvc, "repro"], repo, env)
        params = repo / "params.yaml"
        # drop the last threshold: the B' of the others are unchanged, so they are not re-run
        original = params.read_text()
        m = re.search(r"thresholds: \[([^\]]*)\]", original)
        assert m and "," in m.group(1), "prune.thresholds (two or more) not found in params.yaml"
        params.write_text(original.replace(m.group(0), f"thresholds: [{m.group(1).rsplit(',', 1)[0]}]"))
        rerun, rerun_stages = timed([dvc, "repro"], repo, env)
        params.write_text(original)  # and back: a run DVC has seen
        back, back_stages = timed([dvc, "repro"], repo, env)

    print("\n| run | wall time |\n|---|---:|")
    print(f"| `dvc repro` from scratch | {full:.1f} s |")
    for name, secs in stages:
        print(f"| &nbsp;&nbsp;{name} | {secs:.1f} s |")
    print(f"| no-op `dvc repro` | {noop:.1f} s |")
    print(f"| `dvc repro` after dropping the last of `prune.thresholds` (ran: "
          f"{', '.join(s for s, _ in rerun_stages) or 'nothing'}) | {rerun:.1f} s |")
    print(f"| `dvc repro` after putting it back (ran: {', '.join(s for s, _ in back_stages) or 'nothing'}) "
          f"| {back:.1f} s |")
    if args.out:
        runs = [("whole", "`dvc repro` from scratch", full)] + [(n, n, t) for n, t in stages] + [
            ("noop", "no-op `dvc repro`", noop)]
        rows = [{"key": f"{args.preset}:{rev}:{key}", "preset": args.preset, "rev": rev, "run": run,
                 "seconds": f"{secs:.1f}", "beside": args.beside, "cpu": docs.machine()} for key, run, secs in runs]
        print(f"recorded in {docs.record('pipeline', rows)}")


if __name__ == "__main__":
    main()
