"""evaluate-repaired: B'_X and G_X, pruned-only and fine-pruned, on test and bd_test, for every
X of prune.thresholds; metrics, tables and bar charts, and fine-pruning's chosen epochs."""
from pathlib import Path

import pandas as pd

from badnet_repair import artifacts, metrics, params, plots, variants
from badnet_repair.atomic import atomic_path, write_json, write_text
from badnet_repair.errors import cli
from badnet_repair.evaluate import predict_classes
from badnet_repair.model import load_badnet
from badnet_repair.repaired import repaired_classes

KINDS = (("pruned", artifacts.VARIANTS, "export-variants"), ("fine_pruned", artifacts.FINE_PRUNED, "fine-prune"))
SCORES = ("clean_accuracy", "attack_success_rate", "detection_rate", "false_positive_rate")


@cli
def main():
    cfg = params.load("prune")
    params.thresholds(cfg)
    spelled = variants.spelled_thresholds()  # each X's folder is named as params.yaml spells it
    model, info = artifacts.badnet()
    n, div = info["num_classes"], info["input_divisor"]
    test, bd = artifacts.read_split("test", model), artifacts.read_split("bd_test", model)
    b_test, b_bd = predict_classes(model, test.x, div), predict_classes(model, bd.x, div)

    rows, flat, tuned = [], {}, []
    for kind, folder, stage in KINDS:
        if kind == "fine_pruned" and not Path(folder).exists():
            continue  # the attack suite prunes without fine-tuning; dvc.yaml always runs fine-prune
        for entry in variants.read_index(folder, spelled, stage):
            x = entry["threshold"]
            row = {"kind": kind, "threshold": x, "channels_pruned": entry.get("channels_pruned"),
                   "fraction_pruned": entry.get("fraction_pruned"),
                   **dict.fromkeys([f"pruned_{k}" for k in SCORES[:2]] + [f"repaired_{k}" for k in SCORES])}
            if entry["reached"]:
                pruned = load_badnet(f"{entry['dir']}/{entry['pruned']}")
                p_test, p_bd = predict_classes(pruned, test.x, div), predict_classes(pruned, bd.x, div)
                row.update({f"pruned_{k}": v for k, v in metrics.repaired(p_test, test.y, p_bd, bd.y, n).items()
                            if k in ("clean_accuracy", "attack_success_rate")})
                g_test, g_bd = repaired_classes(b_test, p_test, n), repaired_classes(b_bd, p_bd, n)
                row.update({f"repaired_{k}": v for k, v in metrics.repaired(g_test, test.y, g_bd, bd.y, n).items()})
                if kind == "fine_pruned":
                    tuned.append(entry)
            rows.append(row)
            prefix = f"x{x:g}_" if kind == "pruned" else f"x{x:g}_fine_"
            flat.update({prefix + k: (round(v, 4) if isinstance(v, float) else v)
                         for k, v in row.items() if k not in ("kind", "threshold")})
            flat[prefix + "reached"] = entry["reached"]

    baseline = metrics.repaired(b_test, test.y, b_bd, bd.y, n)
    write_json(artifacts.REPAIRED_METRICS, flat)
    table = metrics.results_table(rows, {"clean_accuracy_test": baseline["clean_accuracy"],
                                         "attack_success_rate_test": baseline["attack_success_rate"]}, cfg["drop"])
    write_text(artifacts.RESULTS_MD, table)
    plots.repaired_bars(rows, artifacts.REPAIRED_PLOT)
    history = [dict(h, threshold=e["threshold"]) for e in tuned for h in e["epochs"]]
    with atomic_path(artifacts.FINE_PRUNE_HISTORY) as tmp:
        pd.DataFrame(history, columns=["threshold", "epoch", "loss", "holdout_accuracy"]).to_csv(tmp, index=False)
    write_json(artifacts.FINE_PRUNE_METRICS, {f"x{e['threshold']:g}_{k}": e[k] for e in tuned
                                              for k in ("chosen_epoch", "holdout_accuracy")})
    print(table)


if __name__ == "__main__":
    main()
