"""Benchmark: the project's evaluation routine against Keras' Model.predict, side by side.

    python benchmarks/evaluate.py            # models/badnet.h5 on data/cl/test.h5 (dvc repro first)
    python benchmarks/evaluate.py --out      # ... and record the figures in benchmarks/results/

evaluate.predict_classes runs one tf.function per model over batches of 1024 and takes
the argmax inside it. The references call `Model.predict` (batch 1024, and Keras' default
32) and take the argmax in numpy. All must give the same classes, or this exits 1.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from badnet_repair import h5data
from badnet_repair.artifacts import read_json
from badnet_repair.evaluate import predict_classes, scale
from badnet_repair.model import load_badnet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # tools/docs.py: record(), machine()
import docs  # noqa: E402


def best_of(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/badnet.h5")
    ap.add_argument("--data", default="data/cl/test.h5")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each; the fastest counts")
    ap.add_argument("--out", action="store_true", help="record the figures in benchmarks/results/evaluate.csv")
    args = ap.parse_args()
    model = load_badnet(args.model)
    divisor = read_json(args.model.replace(".h5", ".json"), "fetch-data")["input_divisor"]
    x = h5data.read(args.data).x
    ours = lambda: predict_classes(model, x, divisor)  # noqa: E731
    keras_1024 = lambda: np.argmax(model.predict(scale(x, divisor), batch_size=1024, verbose=0), 1)  # noqa: E731
    keras_32 = lambda: np.argmax(model.predict(scale(x, divisor), batch_size=32, verbose=0), 1)  # noqa: E731
    ours()  # trace once
    rows = []
    t_ours, ref = best_of(ours, args.repeat)
    for name, fn in [("evaluate.predict_classes", None), ("Model.predict, batch 1024", keras_1024),
                     ("Model.predict, batch 32", keras_32)]:
        t, classes = (t_ours, ref) if fn is None else best_of(fn, args.repeat)
        if not np.array_equal(classes, ref):
            print(f"FAILED: {name} gives other classes than evaluate.predict_classes")
            return 1
        rows.append({"key": name, "routine": name, "images": len(x), "seconds": f"{t:.2f}",
                     "ratio": f"{t / t_ours:.2f}", "cpu": docs.machine()})
        print(f"{name}: {t:.2f}s for {len(x)} images; {t / t_ours:.2f}x the project's time", flush=True)
    print("identical classes")
    if args.out:
        print("recorded in", docs.record("evaluate", rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
