"""prune-orders: the sweep in both orders, the least active channels first (Fine-Pruning, the
default) and the most active first (the assignment's "decreasing order of average activation
values"): plots/prune_orders.csv and .png (params: prune.layer). The step each order keeps
for each X is orders-kept's."""
import pandas as pd

from badnet_repair import artifacts, params, plots, pruning
from badnet_repair.atomic import atomic_path
from badnet_repair.errors import cli


@cli
def main():
    cfg = params.load("prune")
    model, _ = artifacts.badnet()
    acts, labels = artifacts.read_activations(artifacts.ACTIVATIONS)
    scores = pruning.channel_scores(acts["valid"])
    fill = pruning.removed_values(model, cfg["layer"])
    parts = []
    for order in pruning.ORDERS:
        table, _ = pruning.sweep_table(model, cfg["layer"], acts, labels, pruning.prune_order(scores, order), fill)
        parts.append(pd.DataFrame({"order": order, **table}))
    rows = pd.concat(parts, ignore_index=True)
    with atomic_path(artifacts.PRUNE_ORDERS_CSV) as tmp:
        rows.to_csv(tmp, index=False)
    plots.orders_figure(rows, artifacts.PRUNE_ORDERS_PLOT)


if __name__ == "__main__":
    main()
