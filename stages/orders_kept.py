"""orders-kept: the step each pruning order keeps as B' for each X of prune.thresholds, by
the stopping rule export-variants uses (validation accuracy alone), read from prune-orders'
sweeps: metrics/prune_orders.json (params: prune.thresholds, keep, drop). Its own stage, so
that a new X re-runs this and not the two sweeps."""
import pandas as pd

from badnet_repair import artifacts, params, pruning
from badnet_repair.atomic import write_json
from badnet_repair.errors import cli

COLUMNS = ("channels_pruned", "fraction_pruned", "clean_accuracy_valid", "clean_accuracy_test",
           "attack_success_rate_test")


@cli
def main():
    cfg = params.load("prune")
    xs = params.thresholds(cfg)
    rows = pd.read_csv(artifacts.PRUNE_ORDERS_CSV, float_precision="round_trip")  # the sweeps' own figures
    kept = {}
    for order in pruning.ORDERS:
        table = rows[rows["order"] == order].reset_index(drop=True)
        kept[order] = {}
        for x in xs:
            k = pruning.choose_step(table["clean_accuracy_valid"].to_numpy(), x, cfg["keep"], cfg["drop"])
            kept[order][f"{x:g}"] = None if k is None else {c: table[c][k].item() for c in COLUMNS}
    write_json(artifacts.PRUNE_ORDERS_METRICS, kept)


if __name__ == "__main__":
    main()
