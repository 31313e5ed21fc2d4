"""Benchmark: the project's prune sweep against the naive per-step re-evaluation, at CSAW scale.

    python benchmarks/sweep.py            # 11,547 / 11,547 / 12,830 / 12,830 images, 60 channels, 1283 classes

The naive reference does what public lab3 solutions do: for each step, copy the
model, zero the filter and `predict` all four datasets. It runs on a sample of
steps; the two must give identical predictions at every sampled step, or this
script exits 1. It prints the per-step times, their ratio and the peak RSS.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

from badnet_repair import pruning
from badnet_repair.attack import Split, render_split
from badnet_repair.evaluate import predict
from badnet_repair.model import build_deepid, keras, load_badnet
from badnet_repair.synthetic import Trigger, make_identities

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # tools/docs.py: record(), machine()
import docs  # noqa: E402

SHARED_WEIGHTS = Path(__file__).resolve().parents[2] / "shared/csaw-hackml-2020/lab3/bd_weights.h5"
SIZES = {"valid": 11547, "bd_valid": 11547, "test": 12830, "bd_test": 12830}


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def make_inputs(scale: float):
    """Synthetic faces at CSAW scale (raw 0-255); bd_* wear the sunglasses."""
    ids = make_identities(1283, seed=0)
    xs = {}
    for i, (name, n) in enumerate(SIZES.items()):
        n = int(n * scale)
        labels = np.arange(n) % 1283
        clean, bad = render_split(ids, Split(labels, (99, i)), Trigger())
        xs[name] = bad if name.startswith("bd") else clean  # uint8, as the data files hold them
    return xs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the CSAW dataset sizes")
    ap.add_argument("--naive-steps", type=int, default=6, help="evenly spaced steps for the naive reference")
    ap.add_argument("--naive-batch", type=int, default=32, help="predict batch size of the naive reference (Keras' default)")
    ap.add_argument("--out", action="store_true",
                    help="record the figures in benchmarks/results/sweep.csv (the docs render them)")
    ap.add_argument("--model", help="a BadNet to sweep instead, e.g. models/badnet.h5 after `dvc repro`")
    args = ap.parse_args()

    if args.model:
        model, source = load_badnet(args.model), args.model
    elif SHARED_WEIGHTS.is_file():
        model, source = load_badnet(SHARED_WEIGHTS), "the real CSAW lab3 BadNet weights"
    else:
        keras.utils.set_random_seed(0)
        model, source = build_deepid(), "a randomly initialised DeepID (../shared not found)"
    t = time.perf_counter()
    xs = make_inputs(args.scale)
    print(f"model: {source}; inputs: {', '.join(f'{k} {len(v)}' for k, v in xs.items())} "
          f"[{time.perf_counter() - t:.0f}s to draw]", flush=True)
    # Labels: B's own answers, so clean accuracy starts at 100% and the curves mean something.
    layer = "pool_3"
    front, _ = pruning.split(model, layer)

    # --- the project's sweep: front once, then every step on the cached activations
    t0 = time.perf_counter()
    acts = {k: predict(front, x) for k, x in xs.items()}
    t_front = time.perf_counter() - t0
    order = pruning.prune_order(pruning.channel_scores(acts["valid"]), "ascending")
    fill = pruning.removed_values(model, layer)
    t1 = time.perf_counter()
    fast = {k: pruning.sweep_predictions(model, layer, a, order, fill) for k, a in acts.items()}
    t_sweep = time.perf_counter() - t1
    steps = len(order) + 1
    fast_per_step = (t_front + t_sweep) / steps
    print(f"project sweep: {steps} steps, front {t_front:.1f}s + sweep {t_sweep:.1f}s "
          f"= {fast_per_step:.3f}s per step (all four datasets)", flush=True)

    # --- the naive reference on a sample of steps
    sample = np.unique(np.linspace(0, steps - 1, args.naive_steps).round().astype(int))
    naive_times, mismatches = [], 0
    for k in sample:
        t = time.perf_counter()
        pruned = pruning.prune(model, layer, order[:k])
        preds = {n: np.argmax(pruned.predict(x, batch_size=args.naive_batch, verbose=0), 1) for n, x in xs.items()}
        naive_times.append(time.perf_counter() - t)
        for n in xs:
            bad = int(np.sum(preds[n] != fast[n][k]))
            if bad:
                print(f"MISMATCH at step {k} on {n}: {bad} predictions differ")
                mismatches += bad
        acc = {n: 100 * np.mean(fast[n][k] == fast[n][0]) for n in xs}
        print(f"  step {k:2d}: naive {naive_times[-1]:.2f}s; agreement with step 0: "
              + ", ".join(f"{n} {v:.2f}%" for n, v in acc.items()), flush=True)
    naive_per_step = float(np.mean(naive_times))
    print(f"naive reference: {naive_per_step:.2f}s per step (mean of {len(sample)} steps, predict batch {args.naive_batch})")
    print(f"ratio: {naive_per_step / fast_per_step:.1f}x per step")
    print(f"peak RSS: {peak_rss_gb():.2f} GB")
    if mismatches:
        print(f"FAILED: {mismatches} predictions differ between the two methods")
        return 1
    print("identical predictions at every sampled step")
    if args.out:
        row = {"key": args.model or "lab3", "model": source, "cpu": docs.machine(), "front_s": f"{t_front:.1f}",
               "sweep_s": f"{t_sweep:.1f}", "per_step_s": f"{fast_per_step:.3f}",
               "naive_per_step_s": f"{naive_per_step:.2f}", "ratio": f"{naive_per_step / fast_per_step:.1f}",
               "identical": f"yes, at {len(sample)} sampled steps", "peak_rss_gb": f"{peak_rss_gb():.2f}"}
        print(f"recorded in {docs.record('sweep', [row])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
