"""suite defend@NAME: every defense of suite/params.yaml's `defenses` on one suite BadNet,
then their scores (params: defend; prune.layer, which fine-pruning follows unless told
otherwise; the BadNet's clean validation file is all they read)."""
import sys

from badnet_repair import defenses, params, suite
from badnet_repair.errors import cli


@cli
def main():
    name = sys.argv[1]
    names = suite.defenses(known=defenses.names())
    cfg = {"defend": dict(params.load("defend"), names=names), "prune": params.load("prune")}
    suite.run_stages(name, [*(["defend.py", d] for d in names), ["evaluate_defenses.py"]], cfg)


if __name__ == "__main__":
    main()
