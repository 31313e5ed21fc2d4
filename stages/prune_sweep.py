"""prune-sweep: remove prune.layer's channels one at a time in prune.order; score every step."""
import time

import pandas as pd

from badnet_repair import artifacts, params, plots, pruning
from badnet_repair.atomic import atomic_path
from badnet_repair.errors import cli
from badnet_repair.evaluate import percent


@cli
def main():
    cfg = params.load("prune")
    model, _ = artifacts.badnet()
    acts, labels = artifacts.read_activations(artifacts.ACTIVATIONS)
    order = pruning.prune_order(pruning.channel_scores(acts["valid"]), cfg["order"])
    _, head = pruning.split(model, cfg["layer"])
    fill = pruning.removed_values(model, cfg["layer"])
    n = len(order)

    table = {"channels_pruned": range(n + 1), "fraction_pruned": [k / n for k in range(n + 1)],
             "channel_removed": [-1] + [int(c) for c in order]}
    start = time.perf_counter()
    for split, kind in (("valid", "clean_accuracy"), ("bd_valid", "attack_success_rate"),
                        ("test", "clean_accuracy"), ("bd_test", "attack_success_rate")):
        preds = pruning.sweep_predictions(head, acts[split], order, fill)
        name = f"{kind}_{split.removeprefix('bd_')}"
        table[name] = [round(percent(p, labels[split]), 4) for p in preds]
        print(f"{split}: {n + 1} steps [{time.perf_counter() - start:.1f}s]", flush=True)
    sweep = pd.DataFrame(table)
    with atomic_path(artifacts.SWEEP_CSV) as tmp:
        sweep.to_csv(tmp, index=False)
    plots.sweep_figure(sweep, artifacts.SWEEP_PLOT)


if __name__ == "__main__":
    main()
