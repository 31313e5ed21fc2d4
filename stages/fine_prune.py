"""fine-prune@X: fine-tune B'_X on clean validation data, pruned channels held at zero, epoch
chosen on a clean holdout (params: finetune, prune.layer). One instance per X (foreach)."""
import sys

from badnet_repair import artifacts, params, training, variants
from badnet_repair.errors import cli


@cli
def main():
    variants.threshold(sys.argv[1])
    cfg = params.load("finetune")
    params.positive(cfg, "finetune", ["epochs", "batch_size", "learning_rate"])
    layer = params.load("prune")["layer"]
    model, info = artifacts.badnet()
    entry = variants.read_entry(artifacts.variant_dir(artifacts.VARIANTS, sys.argv[1]), f"export-variants@{sys.argv[1]}")
    valid = artifacts.read_split("valid", model)
    _, holdout = training.split_holdout(len(valid.y), cfg["holdout"], cfg["seed"])
    variants.fine_prune(model, entry, valid, holdout, layer, cfg, info["input_divisor"],
                        artifacts.variant_dir(artifacts.FINE_PRUNED, sys.argv[1]))


if __name__ == "__main__":
    main()
