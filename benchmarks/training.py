"""DeepID training throughput (images/s) under the pipeline's settings and alternatives,
each in a fresh process (TensorFlow's threading and determinism are process-wide), side
by side in one run, as ratios to the pipeline's own settings:

    python benchmarks/training.py                 # 8,192 images, 1 warm-up + 2 timed epochs each
    python benchmarks/training.py --images 16384 --epochs 3

The pipeline (attack.train_badnet) runs Keras `fit` on a float32 array, batch 256, Adam,
with TensorFlow op determinism on. Only speed is measured here: images are random.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

CONFIGS = {  # name: what differs from the pipeline's training
    "pipeline": "Keras fit, batch 256, op determinism on (attack.train_badnet)",
    "no-determinism": "the same, op determinism off",
    "batch-512": "batch 512",
    "batch-128": "batch 128",
    "batch-64": "batch 64 (fine-tuning's and the defenses')",
    "xla": "jit_compile=True",
    "tf-function-step": "a plain tf.function train step over numpy batches, op determinism on",
    "inter-op-1": "inter-op threads 1 (intra-op left to TensorFlow)",
    "intra-op-1": "intra-op threads 1",
    "batch-1024": "batch 1024",
    "onednn-off": "TF_ENABLE_ONEDNN_OPTS=0 (Eigen kernels instead of oneDNN)",
    "tfdata-uint8": "fit on a tf.data pipeline over uint8 images, scaled in the pipeline",
    "steps-per-execution-8": "compile(steps_per_execution=8)",
    "steps-per-execution-8-batch-512": "compile(steps_per_execution=8), batch 512",
    "xla-steps-per-execution-8": "jit_compile=True, steps_per_execution=8",
    "mixed-bfloat16": "Keras mixed_bfloat16 policy (bf16 compute, fp32 weights)",
}


def _measure(name: str, n: int, epochs: int) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if name == "onednn-off":
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
    import numpy as np
    import tensorflow as tf

    if name == "inter-op-1":
        tf.config.threading.set_inter_op_parallelism_threads(1)
    if name == "intra-op-1":
        tf.config.threading.set_intra_op_parallelism_threads(1)
    from badnet_repair.model import build_deepid, keras

    if name == "mixed-bfloat16":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")

    keras.utils.set_random_seed(0)
    if name == "no-determinism":  # badnet_repair.model switched it on for every stage
        from tensorflow.python.framework import config as tf_config

        tf_config.disable_op_determinism()
    batch = {"batch-512": 512, "batch-128": 128, "batch-64": 64, "batch-1024": 1024, "steps-per-execution-8-batch-512": 512}.get(name, 256)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, 55, 47, 3)).astype(np.float32) / np.float32(255)
    y = rng.integers(0, 1283, n)
    model = build_deepid(1283)
    opt = keras.optimizers.Adam(1e-3)
    if name == "tf-function-step":
        loss_fn = keras.losses.SparseCategoricalCrossentropy()
        model.build((None, 55, 47, 3))
        opt.build(model.trainable_variables)

        @tf.function(reduce_retracing=True)
        def step(xb, yb):
            with tf.GradientTape() as tape:
                loss = loss_fn(yb, model(xb, training=True))
            opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
            return loss

        def epoch():
            order = rng.permutation(n)
            for i in range(0, n, batch):
                pick = order[i:i + batch]
                step(x[pick], y[pick])
    else:
        model.compile(opt, "sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=name.startswith("xla"),
                      steps_per_execution=8 if "steps-per-execution-8" in name else 1)
        if name == "tfdata-uint8":
            x8 = (x * 255).astype(np.uint8)
            data = (tf.data.Dataset.from_tensor_slices((x8, y)).shuffle(n, seed=0)
                    .batch(batch).map(lambda a, b: (tf.cast(a, tf.float32) / 255.0, b)).prefetch(2))

            def epoch():
                model.fit(data, epochs=1, verbose=0)
        else:
            def epoch():
                model.fit(x, y, batch_size=batch, epochs=1, shuffle=True, verbose=0)

    epoch()  # warm-up: tracing and compilation
    start = time.perf_counter()
    for _ in range(epochs):
        epoch()
    seconds = time.perf_counter() - start
    return {"name": name, "images_per_second": n * epochs / seconds, "seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=8192)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--only", choices=list(CONFIGS), help=argparse.SUPPRESS)  # one measurement, in-process
    ap.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS),
                    help="which to measure (the pipeline's own always comes first)")
    ap.add_argument("--out", action="store_true",
                    help="record the figures in benchmarks/results/training.csv (the docs render them)")
    args = ap.parse_args()
    if args.only:
        print(json.dumps(_measure(args.only, args.images, args.epochs)))
        return
    rows = []
    for name in ["pipeline"] + [c for c in args.configs if c != "pipeline"]:
        res = subprocess.run([sys.executable, __file__, "--only", name, "--images", str(args.images),
                              "--epochs", str(args.epochs)], capture_output=True, text=True)
        if res.returncode:
            sys.exit(f"{name} failed:\n{res.stderr[-2000:]}")
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(f"{name}: {rows[-1]['images_per_second']:.0f} images/s", file=sys.stderr, flush=True)
    base = rows[0]["images_per_second"]
    print(f"\n{args.images} images, {args.epochs} timed epochs, {os.cpu_count()} cores\n")
    print("| training | images/s | ratio to the pipeline's |\n|---|---:|---:|")
    for r in rows:
        print(f"| {r['name']}: {CONFIGS[r['name']]} | {r['images_per_second']:.0f} | "
              f"{r['images_per_second'] / base:.2f}× |")
    if args.out:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
        import docs  # tools/docs.py: record(), machine()

        cpu = docs.machine()
        print("recorded in", docs.record("training", [  # a row per config and CPU
            {"key": f"{r['name']} on {cpu}", "config": r["name"], "what": CONFIGS[r["name"]],
             "images_per_s": f"{r['images_per_second']:.0f}", "ratio": f"{r['images_per_second'] / base:.2f}",
             "cpu": cpu} for r in rows]))


if __name__ == "__main__":
    main()
