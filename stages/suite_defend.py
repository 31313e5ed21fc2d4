"""suite defend@NAME: every defense of suite/params.yaml's `defenses` on one suite BadNet,
the clean-only scan of B and of each defended net, then their scores (params: defend; scan;
prune.layer, which fine-pruning follows unless told otherwise; the BadNet's clean validation
file is all the defenses and the scan read)."""
import sys

from badnet_repair import defenses, params, suite
from badnet_repair.errors import cli


@cli
def main():
    name = sys.argv[1]
    names = suite.defenses(known=defenses.names())
    cfg = {"defend": dict(params.load("defend"), names=names), "prune": params.load("prune"),
           "scan": params.load("scan")}
    suite.run_stages(name, [*(["defend.py", d] for d in names), ["scan.py"], ["evaluate_defenses.py"]], cfg)
    suite.collect_times(name, names)  # beside the metrics, where scores@NAME gathers them


if __name__ == "__main__":
    main()
