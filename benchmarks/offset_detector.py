"""A measurement, not the rule in use: the detector of an all-to-all BadNet if it flagged a
disagreement where B's class - k is among the defended net's m highest classes, not only its
first (today's rule, m = 1, repaired.decide). m is chosen per net from clean images alone: the
largest m of the ladder whose flag rate on the clean holdout stays within --budget.

    python benchmarks/offset_detector.py NAME=ROOT [...] [--defense i_bau] [--budget 0.5]

ROOT is a suite net's folder: B (models/badnet.h5), the defense's net, metrics/scan.json (the
offsets the scan found on B), data/cl/valid.h5 (its holdout, as the defenses split it), and,
for the figures only, data/cl/test.h5 and data/bd/bd_test.h5. Rows go to
benchmarks/results/offset_detector.csv: the share flagged of the holdout, of the clean test
images, of the poisoned test images, and of those among them that B sends to its own class + k."""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import docs  # noqa: E402

from badnet_repair import artifacts, params  # noqa: E402
from badnet_repair.defenses.base import DEFENDED, Clean  # noqa: E402
from badnet_repair.evaluate import predict  # noqa: E402
from badnet_repair.model import load_badnet  # noqa: E402

LADDER = (1, 2, 3, 5, 10, 20, 50, 100)


def flagged(b, d, shifts, m):
    """The slow obvious form: per image, B and the defended net disagree and, for some offset
    k, B's class - k is among the defended net's m highest."""
    n = b.shape[1]
    out = np.zeros(len(b), bool)
    for i in range(len(b)):
        bc, top = int(b[i].argmax()), np.argsort(-d[i], kind="stable")[:m]
        out[i] = bc != int(d[i].argmax()) and any((bc - k) % n in top for k in shifts)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("nets", nargs="+", help="NAME=ROOT")
    ap.add_argument("--defense", default="i_bau")
    ap.add_argument("--budget", type=float, default=0.5, help="% of the clean holdout m may flag")
    args = ap.parse_args()
    defend = params.load("defend")
    rows = []
    for spec in args.nets:
        name, root = spec.split("=")
        root = Path(root)
        shifts = artifacts.scan_targets(root, key="shifts")
        if not shifts:
            print(f"{name}: the scan found no offset on B; skipped")
            continue
        badnet, info = artifacts.badnet(root)
        div = info["input_divisor"]
        nets = [badnet, load_badnet(root / "models/defenses" / args.defense / DEFENDED)]
        valid = artifacts.read_split("valid", badnet, root)
        clean = Clean(valid.x, valid.y, defend["holdout"], defend["seed"], div)
        bd = artifacts.read_split("bd_test", badnet, root)
        sets = {"holdout": clean.x_holdout, "test": artifacts.read_split("test", badnet, root).x, "bd_test": bd.x}
        outs = {s: [predict(m, x, div) for m in nets] for s, x in sets.items()}
        rates = {m: {s: flagged(*outs[s], shifts, m) for s in sets} for m in LADDER}
        chosen = max(m for m in LADDER if 100 * rates[m]["holdout"].mean() <= args.budget)
        obeyed = outs["bd_test"][0].argmax(1) == bd.y  # B sends the image to its own class + k
        for m in LADDER:
            r = rates[m]
            rows.append({"key": f"{name}/{args.defense}/{m}", "net": name, "defense": args.defense, "m": m,
                         "chosen": m == chosen, "holdout_flagged": round(100 * r["holdout"].mean(), 2),
                         "test_flagged": round(100 * r["test"].mean(), 2),
                         "detection": round(100 * r["bd_test"].mean(), 2),
                         "detection_of_obeyed": round(100 * r["bd_test"][obeyed].mean(), 2),
                         "budget": args.budget, "cpu": docs.machine()})
            print(f"{name} m {m}{' (chosen)' if m == chosen else ''}: holdout {rows[-1]['holdout_flagged']}%, "
                  f"test {rows[-1]['test_flagged']}%, detection {rows[-1]['detection']}% "
                  f"({rows[-1]['detection_of_obeyed']}% of those B obeys)", flush=True)
    docs.record("offset_detector", rows)


if __name__ == "__main__":
    main()
