"""The scan's calibration: every candidate's and offset's share at a ladder of bounds, on clean
nets and on BadNets (an offset k's row has class "y+k"), into
benchmarks/results/scan_calibration.csv. Only the clean nets' rows choose the bound
(badnet_repair.scan.calibrate); the BadNets' rows show what that choice finds.

    python benchmarks/scan_calibration.py NAME=ROOT[=MODEL] [...] --bounds 4,5,6,8

ROOT holds a net's models/badnet.h5 and data/cl/valid.h5, and metrics/attack.json (read
here only to label the rows: target or not, clean net or BadNet; the scan never reads it).
MODEL, if given, is scanned instead of B: a defended net of that BadNet or clean net."""
import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import docs  # noqa: E402

from badnet_repair import h5data, params, scan  # noqa: E402
from badnet_repair.defenses.base import Clean  # noqa: E402
from badnet_repair.model import load_badnet  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("nets", nargs="+", help="NAME=ROOT[=MODEL]")
    ap.add_argument("--bounds", default="4,5,6,8")
    args = ap.parse_args()
    cfg, defend = params.load("scan"), params.load("defend")
    rows = []
    for spec in args.nets:
        name, root, *model_path = spec.split("=")
        root = Path(root)
        attack = json.loads((root / "metrics/attack.json").read_text())
        targets = {str(t) for t in attack.get("triggers", {}).values()} if attack.get("poison_rate", 0) > 0 else set()
        model = load_badnet(model_path[0] if model_path else root / "models/badnet.h5")
        valid = h5data.read(root / "data/cl/valid.h5")
        clean = Clean(valid.x, valid.y, defend["holdout"], defend["seed"], json.loads(
            (root / "models/badnet.json").read_text())["input_divisor"])
        for bound in [float(b) for b in args.bounds.split(",")]:
            start = time.perf_counter()
            out = scan.scan(model, clean, dict(cfg, bound=bound, seed=defend["seed"]), log=lambda s: None)
            seconds = time.perf_counter() - start
            tried = [(str(r["class"]), r) for r in out["candidates"]] + [
                (f"y+{r['shift']}", r) for r in out.get("shift_candidates", [])]  # all-to-all's trigger: "y+1"
            for label, r in tried:
                rows.append({"key": f"{name}/{bound:g}/{label}", "net": name,
                             "kind": "BadNet" if targets else "clean", "bound": f"{bound:g}", "class": label,
                             "is_target": label in targets, "pull": r["pull"], "share": r["share"],
                             "seconds": round(seconds, 1), "cpu": docs.machine()})
            print(f"{name} bound {bound:g}: " + ", ".join(
                f"{label}{'*' if label in targets else ''} {100 * r['share']:.1f}%" for label, r in tried)
                + f" [{seconds:.1f}s]", flush=True)
    docs.record("scan_calibration", rows)


if __name__ == "__main__":
    main()
