"""defend@NAME: one defense of the suite on B, with the clean validation images alone;
saves the defended net and its G in models/defenses/NAME (params: defend)."""
import sys

from badnet_repair import artifacts, defense, params
from badnet_repair.errors import cli


@cli
def main():
    name = sys.argv[1]
    cfg = params.load("defend")
    defense.check(cfg)
    model, info = artifacts.badnet()
    valid = artifacts.read_split("valid", model)
    defense.run(name, model, valid, cfg, info["input_divisor"], artifacts.DEFENSES_DIR + "/" + name)


if __name__ == "__main__":
    main()
