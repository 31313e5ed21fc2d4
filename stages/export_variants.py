"""export-variants@X: B'_X and G_X for one X of prune.thresholds (prune.layer, keep, drop).
dvc.yaml runs one instance per X (foreach), so each X is cached and skipped on its own."""
import sys

from badnet_repair import artifacts, params, variants
from badnet_repair.errors import cli


@cli
def main():
    x = variants.threshold(sys.argv[1])
    cfg = params.load("prune")
    model, _ = artifacts.badnet()
    variants.export(model, artifacts.read_sweep(), cfg, x, artifacts.variant_dir(artifacts.VARIANTS, sys.argv[1]))


if __name__ == "__main__":
    main()
