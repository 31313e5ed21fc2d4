"""Benchmark: drawing a multi BadNet's clean validation and test images (params.yaml's
data.synthetic sizes: 1283 identities, 9 and 10 per identity) once per trigger, as
fetch-data did, against once for all three triggers (synthetic.render with a tuple),
side by side in one run, with the same workers; and whether they give the same bytes.
Also where one image's drawing goes (cProfile of synthetic.render on one chunk).

    python benchmarks/render.py [--write] [--beside TEXT]

--write puts the figures in benchmarks/results/render.csv with the CPU.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))  # docs: machine(), record()

import docs  # noqa: E402
from badnet_repair import params  # noqa: E402
from badnet_repair.attack import RENDER_BATCH, Split, render_split  # noqa: E402
from badnet_repair.sources import attack_triggers  # noqa: E402
from badnet_repair.synthetic import make_identities, render  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--beside", default="nothing", help="what ran beside it, for the CSV")
    ap.add_argument("--identities", type=int, help="fewer identities, for a quick look (default: params.yaml's)")
    args = ap.parse_args()
    cfg = params.load("data")["synthetic"]
    k, seed = args.identities or cfg["identities"], cfg["seed"]
    ids = make_identities(k, seed)
    triggers = tuple(t for t, _ in attack_triggers("multi", cfg["target"], k, seed))
    splits = [Split(np.repeat(np.arange(k), cfg[f"{s}_per_identity"]), (seed, key))
              for s, key in (("valid", 4), ("test", 5))]
    images = sum(len(s.labels) for s in splits)

    start = time.perf_counter()
    each = [[render_split(ids, s, t) for t in triggers] for s in splits]
    per_trigger = time.perf_counter() - start
    start = time.perf_counter()
    once = [render_split(ids, s, triggers) for s in splits]
    one_pass = time.perf_counter() - start
    same = all(np.array_equal(clean, pairs[0][0]) and all(np.array_equal(w, p[1]) for w, p in zip(worn, pairs))
               for (clean, worn), pairs in zip(once, each))
    del each, once

    prof = cProfile.Profile()
    labels = splits[0].labels[:RENDER_BATCH]
    prof.enable()
    for i in range(20):
        render(ids, labels, np.random.default_rng([seed, i]), triggers[0], both=True)
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("tottime").print_stats(6)
    own = {fn[2]: v[2] for fn, v in stats.stats.items()}  # function name: its own time
    paint = own.get("_paint", 0.0) / stats.total_tt
    print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:2000])

    row = {"key": f"multi:{k}", "what": f"a multi BadNet's clean valid and test images ({images}), three triggers",
           "per_trigger_seconds": round(per_trigger, 1), "one_pass_seconds": round(one_pass, 1),
           "ratio": round(one_pass / per_trigger, 2), "same_bytes": "yes" if same else "no",
           "paint_share": round(paint, 2),
           "beside": args.beside, "cpu": docs.machine()}
    print(f"{images} images, 3 triggers: drawn per trigger {per_trigger:.1f} s, once {one_pass:.1f} s, "
          f"ratio {one_pass / per_trigger:.2f}, same bytes: {row['same_bytes']}; "
          f"_paint's share of a drawing: {paint:.2f}")
    if args.write:
        docs.record("render", [row])
    if not same:
        sys.exit("the two ways drew different bytes")


if __name__ == "__main__":
    main()
