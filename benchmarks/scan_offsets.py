"""What the scan's offset search (scan.shifts, all-to-all backdoors) costs: the scan of each net
with scan.shifts 0 and with params.yaml's value, in turns in one process, so the ratio is read
on the same machine under the same load.

    python benchmarks/scan_offsets.py NAME=ROOT[=MODEL] [...] [--repeat 3] [--beside WHAT] [--out]

ROOT holds a net's models/badnet.h5, models/badnet.json and data/cl/valid.h5 (a `dvc repro`
root, or a suite net's folder); MODEL, if given, is scanned instead of B. --out records the
rows in benchmarks/results/scan_offsets.csv."""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import docs  # noqa: E402

from badnet_repair import h5data, params, scan  # noqa: E402
from badnet_repair.defenses.base import Clean  # noqa: E402
from badnet_repair.model import load_badnet  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("nets", nargs="+", help="NAME=ROOT[=MODEL]")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--beside", default="nothing", help="what else ran on the machine meanwhile")
    ap.add_argument("--out", action="store_true", help="record the rows in benchmarks/results/scan_offsets.csv")
    args = ap.parse_args()
    cfg, defend = scan.check(params.load("scan")), params.load("defend")
    rows = []
    for spec in args.nets:
        name, root, *model_path = spec.split("=")
        root = Path(root)
        model = load_badnet(model_path[0] if model_path else root / "models/badnet.h5")
        valid = h5data.read(root / "data/cl/valid.h5")
        divisor = json.loads((root / "models/badnet.json").read_text())["input_divisor"]
        clean = Clean(valid.x, valid.y, defend["holdout"], defend["seed"], divisor)
        times, found = {0: [], cfg["shifts"]: []}, {}
        scan.scan(model, clean, dict(cfg, shifts=0, seed=defend["seed"]), log=lambda s: None)  # warm-up: tracing
        for _ in range(args.repeat):
            for shifts in times:  # in turns: both see the same load
                start = time.perf_counter()
                out = scan.scan(model, clean, dict(cfg, shifts=shifts, seed=defend["seed"]), log=lambda s: None)
                times[shifts].append(time.perf_counter() - start)
                found[shifts] = " ".join([*map(str, out["targets"]), *(f"y+{k}" for k in out["shifts"])]) or "none"
        base = statistics.median(times[0])
        for shifts, ts in times.items():
            median = statistics.median(ts)
            rows.append({"key": f"{name}/{shifts}/{args.beside}", "net": name, "shifts": shifts, "repeats": args.repeat,
                         "median_seconds": round(median, 1), "ratio": round(median / base, 2),
                         "found": found[shifts], "beside": args.beside, "cpu": docs.machine()})
            print(f"{name}, scan.shifts {shifts}: {median:.1f} s (x{median / base:.2f}), "
                  f"found {found[shifts]}", flush=True)
    if args.out:
        docs.record("scan_offsets", rows)


if __name__ == "__main__":
    main()
