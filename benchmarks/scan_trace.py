"""Benchmark: the scan's search step traced once per net against once per search, side by side.

    python benchmarks/scan_trace.py          # the scan of models/badnet.h5 (dvc repro first)
    python benchmarks/scan_trace.py --out    # ... and record the figures in benchmarks/results/

Run it in the default project (lab3's B) and in a small-preset net's folder: the traces
weigh far more on a small net, as in the tests.

scan.universal_perturbation runs its step through one tf.function per model (scan._descent),
its sizes fed as tensors. Before, each search built its own tf.function, which TensorFlow
traced for the full batch and again for the last one: twice per candidate and offset, and
in I-BAU twice per target each round. Each form scans a freshly loaded B (the new one's one
trace included), in turns; both must give the same scan, or this exits 1.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from badnet_repair import artifacts, params, scan
from badnet_repair.defenses import base
from badnet_repair.model import load_badnet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # tools/docs.py: record(), machine()
import docs  # noqa: E402


def per_search(model, x, target, bound, step, batch_size, unit=np.float32(1.0)):
    """The search as it was: a tf.function of its own per call, its sizes captured."""
    import tensorflow as tf

    from badnet_repair.training import cross_entropy

    ce, size = cross_entropy(model), np.float32(step * bound)

    @tf.function(reduce_retracing=True)
    def descend(delta, xb, tb):
        with tf.GradientTape() as tape:
            tape.watch(delta)
            loss = ce(tb, model(xb + delta * unit, training=False))
        g = tape.gradient(loss, delta)
        delta = delta - size * g / (tf.norm(g) + 1e-12)
        return delta * tf.minimum(1.0, bound / (tf.norm(delta) + 1e-12))

    delta, aims = tf.zeros((1,) + tuple(x.shape[1:])), np.broadcast_to(np.asarray(target, np.int64), (len(x),))
    for i in range(0, len(x), batch_size):
        delta = descend(delta, tf.constant(x[i:i + batch_size]), tf.constant(aims[i:i + batch_size]))
    return delta.numpy()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=2, help="scans of each form, in turns; the fastest counts")
    ap.add_argument("--beside", default="nothing", help="what else ran on the machine meanwhile, for the record")
    ap.add_argument("--out", action="store_true", help="record the figures in benchmarks/results/scan_trace.csv")
    args = ap.parse_args()
    cfg, defend = scan.check(params.load("scan")), params.load("defend")
    model, info = artifacts.badnet()
    valid = artifacts.read_split("valid", model)
    clean = base.Clean(valid.x, valid.y, defend["holdout"], defend["seed"], info["input_divisor"])
    once_per_net = scan.universal_perturbation
    forms = {"one tf.function per net (scan._descent)": once_per_net, "one tf.function per search (before)": per_search}
    times, verdicts = {f: [] for f in forms}, {}
    for _ in range(args.repeat):
        for form, search in forms.items():
            net = load_badnet(artifacts.BADNET)  # a fresh net: nothing traced for it yet
            scan.universal_perturbation = search
            t = time.perf_counter()
            verdicts[form] = scan.scan(net, clean, dict(cfg, seed=defend["seed"]), log=lambda s: None)
            times[form].append(time.perf_counter() - t)
    scan.universal_perturbation = once_per_net
    searches = cfg["candidates"] + cfg["shifts"]
    base_t = min(times[next(iter(forms))])
    scale = f"{model.output_shape[-1]} classes, {min(cfg['images'], len(clean.y))} images searched"
    rows = [{"key": f"{form}, {scale}", "form": form, "net": scale, "searches": searches,
             "seconds": round(min(ts), 2), "ratio": round(min(ts) / base_t, 2), "beside": args.beside,
             "cpu": docs.machine()} for form, ts in times.items()]
    for r in rows:
        print(f"{r['form']:45s} {r['seconds']:7.2f} s  x{r['ratio']:.2f}  ({searches} searches, one scan of B: {scale})")
    same = len({repr(v) for v in verdicts.values()}) == 1
    print("the same scan from both forms" if same else f"the forms differ: {verdicts}")
    if args.out and same:
        print(f"recorded in {docs.record('scan_trace', rows)}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
