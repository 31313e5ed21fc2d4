"""The fine-pruning trade-off frontier: ASR against clean accuracy over the defense params.

    python benchmarks/fine_prune_frontier.py          # after `dvc repro`; writes plots/fine_prune_frontier.{csv,png}

For every B' (a number of pool_3 channels pruned, taken from the sweep) and every
optimizer / peak learning rate / epochs in the grid, fine-tune B' exactly as the
fine-prune stage does (clean validation data minus the holdout, the pruned filters held
at zero, epoch chosen on the holdout) and score it. Selection columns use validation
data only (holdout accuracy, bd_valid ASR); test columns are for reporting.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd

from badnet_repair import artifacts, finetune, params, pruning, training
from badnet_repair.atomic import atomic_path
from badnet_repair.evaluate import percent, predict_classes, scale


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, nargs="+", default=[17, 19, 27],
                    help="B' to fine-tune: channels pruned (17, 19, 27 are X = 2, 10, 55 on the default run)")
    ap.add_argument("--grid", nargs="+", default=["adam:0.001:10", "adam:0.003:10", "adam:0.003:20"],
                    help="optimizer:peak_learning_rate:epochs")
    ap.add_argument("--out", default="plots/fine_prune_frontier.csv")
    args = ap.parse_args()

    cfg = params.load("finetune")
    layer = params.load("prune")["layer"]
    model, info = artifacts.badnet()
    div = info["input_divisor"]
    data = {s: artifacts.read_split(s, model) for s in ("valid", "bd_valid", "test", "bd_test")}
    _, holdout = training.split_holdout(len(data["valid"].y), cfg["holdout"], cfg["seed"])
    order = artifacts.read_sweep()["channel_removed"].to_numpy()[1:]
    conv = pruning.source_conv(model, layer).name

    def score(net):
        return {f"{kind}_{split.removeprefix('bd_')}": percent(predict_classes(net, data[split].x, div), data[split].y)
                for split, kind in (("valid", "clean_accuracy"), ("bd_valid", "attack_success_rate"),
                                    ("test", "clean_accuracy"), ("bd_test", "attack_success_rate"))}

    rows = []
    for k in args.channels:
        pruned = pruning.prune(model, layer, order[:k])
        rows.append({"channels_pruned": k, "optimizer": "none", "learning_rate": 0.0, "epochs": 0,
                     "chosen_epoch": 0, "holdout_accuracy": percent(
                         predict_classes(pruned, data["valid"].x[holdout], div), data["valid"].y[holdout]),
                     **score(pruned)})
        for spec in args.grid:
            opt, lr, epochs = spec.split(":")
            run = dict(cfg, optimizer=opt, learning_rate=float(lr), epochs=int(epochs))
            t = time.perf_counter()
            train = np.setdiff1d(np.arange(len(data["valid"].y)), holdout)
            tuned, hist = finetune.fine_prune(
                pruned, conv, order[:k], scale(data["valid"].x[train], div), data["valid"].y[train],
                lambda m: percent(predict_classes(m, data["valid"].x[holdout], div), data["valid"].y[holdout]),
                run, log=lambda *a: None)
            rows.append({"channels_pruned": k, "optimizer": opt, "learning_rate": float(lr), "epochs": int(epochs),
                         "chosen_epoch": hist["chosen_epoch"], "holdout_accuracy": hist["holdout_accuracy"],
                         **score(tuned)})
            r = rows[-1]
            print(f"{k} channels, {opt} {lr} x{epochs}: holdout {r['holdout_accuracy']:.2f}, test accuracy "
                  f"{r['clean_accuracy_test']:.2f}, ASR test {r['attack_success_rate_test']:.2f} "
                  f"[{time.perf_counter() - t:.0f}s]", flush=True)
    table = pd.DataFrame(rows).round(4)
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)
    from badnet_repair.plots import frontier_figure

    frontier_figure(table, args.out.removesuffix(".csv") + ".png")
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
