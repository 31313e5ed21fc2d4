"""defend@NAME: one defense on B, with the clean validation images alone; saves the defended
net and its G in models/defenses/NAME (params: defend.NAME and the shared defend.holdout,
seed and budget; prune.layer, which fine-pruning follows unless told otherwise; scan, which
I-BAU's targeted search runs)."""
import sys

from badnet_repair import artifacts, defenses, params, scan
from badnet_repair.defenses import base
from badnet_repair.errors import cli


@cli
def main():
    name = sys.argv[1]
    module = defenses.load(name)
    cfg = params.load("defend")
    prune_layer = params.load("prune")["layer"]
    model, info = artifacts.badnet()  # badnet.json: how to feed B, nothing of the attack
    # every param checked before any work; the scan's params: I-BAU's targeted search runs it
    section = base.settings(name, module, cfg, model, prune_layer, scan.check(params.load("scan")))
    valid = artifacts.read_split("valid", model)
    base.run(name, module, model, valid, cfg, section, info["input_divisor"], artifacts.DEFENSES_DIR + "/" + name)


if __name__ == "__main__":
    main()
