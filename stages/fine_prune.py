"""fine-prune: fine-tune each exported B'_X on clean validation data, pruned filters held at
zero, epoch chosen on a clean holdout (params: finetune, prune.layer)."""
import pandas as pd

from badnet_repair import artifacts, finetune, h5data, params, pruning, variants
from badnet_repair.atomic import atomic_path, file_sha256, write_json
from badnet_repair.errors import cli


@cli
def main():
    cfg = params.load("finetune")
    params.positive(cfg, "finetune", ["epochs", "batch_size", "learning_rate"])
    layer = params.load("prune")["layer"]
    model, info = artifacts.badnet()
    valid = artifacts.read_split("valid", model)
    _, holdout = finetune.split_holdout(len(valid.y), cfg["holdout"], cfg["seed"])
    inputs = {"badnet_sha256": file_sha256(artifacts.BADNET), "valid_sha256": file_sha256(h5data.FILES["valid"]),
              "input_divisor": info["input_divisor"], "finetune": cfg}
    index = variants.fine_prune(model, variants.read_index(artifacts.VARIANTS), valid, holdout,
                                pruning.source_conv(model, layer).name, cfg, info["input_divisor"],
                                artifacts.VARIANTS, artifacts.FINE_PRUNED, inputs)
    rows = [dict(h, threshold=e["threshold"]) for e in index if e["reached"] for h in e["epochs"]]
    with atomic_path(artifacts.FINE_PRUNE_HISTORY) as tmp:
        pd.DataFrame(rows, columns=["threshold", "epoch", "loss", "holdout_accuracy"]).to_csv(tmp, index=False)
    write_json(artifacts.FINE_PRUNE_METRICS, {
        f"x{e['threshold']:g}_{k}": e[k] for e in index if e["reached"] for k in ("chosen_epoch", "holdout_accuracy")})


if __name__ == "__main__":
    main()
