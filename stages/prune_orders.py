"""prune-orders: the sweep in both orders, the least active channels first (Fine-Pruning, the
default) and the most active first (the assignment's "decreasing order of average activation
values"): plots/prune_orders.csv and .png, and metrics/prune_orders.json, the step each order
keeps for each X by the stopping rule (params: prune.layer, thresholds, keep, drop)."""
import numpy as np
import pandas as pd

from badnet_repair import artifacts, params, plots, pruning
from badnet_repair.atomic import atomic_path, write_json
from badnet_repair.errors import cli


@cli
def main():
    cfg = params.load("prune")
    xs = params.thresholds(cfg)
    model, _ = artifacts.badnet()
    acts, labels = artifacts.read_activations(artifacts.ACTIVATIONS)
    scores = pruning.channel_scores(acts["valid"])
    fill = pruning.removed_values(model, cfg["layer"])
    parts, kept = [], {}
    for order in pruning.ORDERS:
        table, _ = pruning.sweep_table(model, cfg["layer"], acts, labels, pruning.prune_order(scores, order), fill)
        parts.append(pd.DataFrame({"order": order, **table}))
        kept[order] = {}
        for x in xs:  # the same rule as export-variants: validation accuracy alone decides
            k = pruning.choose_step(np.asarray(table["clean_accuracy_valid"]), x, cfg["keep"], cfg["drop"])
            kept[order][f"{x:g}"] = None if k is None else {
                c: table[c][k] for c in ("channels_pruned", "fraction_pruned", "clean_accuracy_valid",
                                         "clean_accuracy_test", "attack_success_rate_test")}
    rows = pd.concat(parts, ignore_index=True)
    with atomic_path(artifacts.PRUNE_ORDERS_CSV) as tmp:
        rows.to_csv(tmp, index=False)
    plots.orders_figure(rows, artifacts.PRUNE_ORDERS_PLOT)
    write_json(artifacts.PRUNE_ORDERS_METRICS, kept)


if __name__ == "__main__":
    main()
