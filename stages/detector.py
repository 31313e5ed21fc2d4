"""detector: models/detector.keras, B and the default defense's net as one N+1-class model
that flags an input only where the defended net disagrees with B and B's class is a target
the scan found on B, or the defended net's class + an offset it found (params: defend.default). Reads no data file."""
from pathlib import Path

from badnet_repair import artifacts, params
from badnet_repair.defenses import base
from badnet_repair.errors import BadInput, cli
from badnet_repair.model import load_badnet, save_model
from badnet_repair.repaired import build_repaired


@cli
def main():
    default = params.load("defend")["default"]
    path = Path(artifacts.DEFENSES_DIR) / str(default) / base.DEFENDED
    if not path.is_file():
        raise BadInput(f"{path}: not found; run the defend@{default} stage first")
    targets, shifts = artifacts.scan_targets(), artifacts.scan_targets(key="shifts")
    model, _ = artifacts.badnet()
    save_model(build_repaired(model, load_badnet(path), targets, name="detector", shifts=shifts),
               artifacts.DETECTOR)  # atomic
    suspects = [*map(str, targets), *(f"own + {k}" for k in shifts)]
    print(f"detector: B and {default}, suspects {', '.join(suspects) or 'none (it never flags)'}")


if __name__ == "__main__":
    main()
