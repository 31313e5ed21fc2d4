"""scan: the clean-only backdoor scan of B and of every defended net of defend.names, on
the clean validation images alone: metrics/scan.json (params: scan; defend.holdout and
defend.seed, the defenders' split; defend.names)."""
from pathlib import Path

from badnet_repair import artifacts, params, scan
from badnet_repair.atomic import write_json
from badnet_repair.defenses import base
from badnet_repair.errors import BadInput, cli
from badnet_repair.model import load_badnet


@cli
def main():
    cfg, defend = scan.check(params.load("scan")), params.load("defend")
    base.check_shared(defend)
    paths = {name: Path(artifacts.DEFENSES_DIR) / name / base.DEFENDED for name in defend["names"]}
    for name, path in paths.items():  # every input checked before any work
        if not path.is_file():
            raise BadInput(f"{path}: not found; run the defend@{name} stage first")
    model, info = artifacts.badnet()
    valid = artifacts.read_split("valid", model)
    clean = base.Clean(valid.x, valid.y, defend["holdout"], defend["seed"], info["input_divisor"])
    nets = {"badnet": model, **{name: load_badnet(path) for name, path in paths.items()}}
    out = {}
    for name, net in nets.items():
        print(f"{name}:", flush=True)
        out[name] = scan.scan(net, clean, dict(cfg, seed=defend["seed"]))
        print(f"{name}: {out[name]['verdict']}" + (f", targets {out[name]['targets']}" if out[name]["targets"] else ""))
    write_json(artifacts.SCAN_METRICS, out)


if __name__ == "__main__":
    main()
