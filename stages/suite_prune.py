"""suite prune@NAME: the mission's pruning defense on one suite BadNet: activations, the
sweep, then B'_X and G_X for every X of prune.thresholds, scored (params: prune)."""
import sys

from badnet_repair import params, suite
from badnet_repair.errors import cli


@cli
def main():
    name = sys.argv[1]
    cfg = {"prune": params.load("prune")}
    # Each X spelled as the params file run_stages writes spells it, which names its folder.
    xs = [str(x) for x in params.thresholds(cfg["prune"])]
    suite.run_stages(name, [["activations.py"], ["prune_sweep.py"], *(["export_variants.py", x] for x in xs),
                            ["evaluate_repaired.py"]], cfg)


if __name__ == "__main__":
    main()
