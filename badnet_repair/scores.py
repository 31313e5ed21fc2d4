"""Each suite net's scores in one small committed file, suite/scores/NAME.json: the files of
SCORED as its stages wrote them. `scores@NAME` gathers them; the table and the leaderboard
read nothing else, so git carries a finished net's results to a machine that has none of its
cached files (docs/sharing.md). A module of its own: a change to how the leaderboard reads
the scores must not make a finished net's scores stale."""
from __future__ import annotations

from pathlib import Path

from .artifacts import ATTACK_METRICS, BASELINE_METRICS, DEFENSES_METRICS, SCAN_METRICS, TRAIN_TIME, read_json
from .atomic import write_json
from .errors import BadInput
from .suite import BADNETS, DEFENSE_TIMES

SCORES = "suite/scores"  # NAME.json: one net's scores, what the table and the leaderboard read
SCORED = {ATTACK_METRICS: "badnet", BASELINE_METRICS: "badnet", TRAIN_TIME: "badnet",
          DEFENSES_METRICS: "defend", SCAN_METRICS: "defend", DEFENSE_TIMES: "defend"}  # file -> its stage


def collect_scores(name: str, root=BADNETS, out=SCORES) -> None:
    """One net's scores (the files of SCORED, as they are) into out/NAME.json."""
    folder = Path(root) / name
    write_json(Path(out) / f"{name}.json", {rel: read_json(folder / rel, f"{stage}@{name}")
                                            for rel, stage in SCORED.items()})


def read_scores(name: str, root=SCORES) -> dict:
    """out/NAME.json as collect_scores wrote it: file -> its content."""
    path = Path(root) / f"{name}.json"
    doc = read_json(path, f"scores@{name}")
    if not isinstance(doc, dict) or set(doc) != set(SCORED) or not all(isinstance(v, dict) for v in doc.values()):
        raise BadInput(f"{path}: not a net's scores (it must map {', '.join(SCORED)} to their content); "
                       f"run `cd suite && dvc repro scores@{name}`")
    return doc
