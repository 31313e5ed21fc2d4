"""export-variants: B'_X and G_X for each X in prune.thresholds (prune.keep, prune.drop)."""
from badnet_repair import artifacts, params, variants
from badnet_repair.errors import cli


@cli
def main():
    cfg = params.load("prune")
    thresholds = params.thresholds(cfg)
    model, _ = artifacts.badnet()
    sweep = artifacts.read_sweep()
    variants.export(model, sweep, cfg, thresholds, artifacts.VARIANTS)


if __name__ == "__main__":
    main()
