"""The default defense on raw pixels: the default BadNet (fed x / 255) and the same layers and
weights behind a Rescaling(1/255) input layer, brought in as a user would (`data.source:
local`, input_divisor 1, as lab3's BadNet), each defended by the real stages in its own
folder. One function, so the verdicts must agree: the figures go side by side.

    python benchmarks/raw_pixels.py              # after `dvc repro`; prints both rows
    python benchmarks/raw_pixels.py --out        # ... and records them in benchmarks/results/
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # stagerun: the stage scripts in-process, as dvc runs them
sys.path.insert(0, str(ROOT / "tools"))  # docs: record(), machine()

from badnet_repair import h5data  # noqa: E402
from badnet_repair.model import keras, load_badnet, save_model  # noqa: E402


def rescaled(model):
    """`model`'s layers behind Rescaling(1/255): the same function on raw pixels."""
    from badnet_repair.graph import rebuild
    from badnet_repair.training import copy

    return copy(rebuild(model, first=lambda t: keras.layers.Rescaling(1 / 255.0, name="rescale")(t), name="raw_pixels"))


def run(root: Path, model_path: Path, divisor: float, names: list) -> dict:
    from stagerun import run_stage

    doc = yaml.safe_load((ROOT / "params.yaml").read_text())
    doc["data"]["source"] = "local"
    doc["data"]["local"] = {**{k: str(ROOT / rel) for k, rel in h5data.FILES.items()}, "model": str(model_path),
                            "input_divisor": divisor}
    doc["defend"]["names"] = names
    root.mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    for stage, *args in [("fetch_data",), ("baseline",), *(("defend", n) for n in names)]:
        code, err = run_stage(stage, root, *args)
        if code:
            raise SystemExit(f"{stage} {args} failed in {root}: {err[-3:]}")
    from badnet_repair.defenses import base
    from badnet_repair.evaluate import percent, predict_classes

    model = load_badnet(root / "models/badnet.h5")
    test, bd = (h5data.read(root / h5data.FILES[s]) for s in ("test", "bd_test"))
    pred = {"test": predict_classes(model, test.x, divisor), "bd_test": predict_classes(model, bd.x, divisor)}
    out = {"badnet_clean_accuracy_test": percent(pred["test"], test.y)}
    for n in names:
        out.update(base.score(n, root / "models/defenses" / n, pred, test, bd, divisor, f"defend@{n}"))
    return out


def main() -> int:
    import docs

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", action="store_true", help="record the rows in benchmarks/results/raw_pixels.csv")
    args = ap.parse_args()
    cfg = yaml.safe_load((ROOT / "params.yaml").read_text())["defend"]
    names = [cfg["default"]]
    b = load_badnet(ROOT / "models/badnet.h5")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        save_model(rescaled(b), tmp / "raw_pixels.keras")
        for key, path, divisor in (("x / 255", ROOT / "models/badnet.h5", 255.0),
                                   ("raw pixels, Rescaling(1/255)", tmp / "raw_pixels.keras", 1.0)):
            start = time.perf_counter()
            m = run(tmp / key.split(",")[0].replace(" ", "").replace("/", "_"), path, divisor, names)
            d = cfg["default"]
            rows.append({"key": key, "input_divisor": divisor, "defense": d,
                         "badnet_clean_accuracy_test": round(m["badnet_clean_accuracy_test"], 2),
                         "clean_accuracy_test": round(m[f"{d}_clean_accuracy_test"], 2),
                         "attack_success_rate_test": round(m[f"{d}_attack_success_rate_test"], 2),
                         "seconds": round(time.perf_counter() - start), "cpu": docs.machine()})
    print("| B fed | defense | B's clean % | defended clean % | ASR % | seconds |\n|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['key']} | {r['defense']} | {r['badnet_clean_accuracy_test']:.2f} | {r['clean_accuracy_test']:.2f} "
              f"| {r['attack_success_rate_test']:.2f} | {r['seconds']} |")
    a, c = rows
    print(f"difference: clean {c['clean_accuracy_test'] - a['clean_accuracy_test']:+.2f} points, "
          f"ASR {c['attack_success_rate_test'] - a['attack_success_rate_test']:+.2f} points")
    if args.out:
        print(docs.record("raw_pixels", rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
