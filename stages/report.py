"""report: plots/report.html, one self-contained page with the baseline, the pruned and
fine-pruned tables, the defenses, the backdoor scan, the attack suite's leaderboard (when it has run) and
the figures (params: prune, finetune, shown for context)."""
from pathlib import Path

import pandas as pd

from badnet_repair import artifacts, leaderboard, params, report
from badnet_repair.atomic import write_text
from badnet_repair.errors import BadInput, cli

LEADERBOARD, LEADERBOARD_PLOT = leaderboard.LEADERBOARD, leaderboard.LEADERBOARD_PLOT
FIGURES = {  # title: (file, the stage that writes it)
    "Clean accuracy and attack success rate as channels are pruned": (artifacts.SWEEP_PLOT, "prune-sweep"),
    "G as a detector at every sweep step": (artifacts.DETECTOR_PLOT, "prune-sweep"),
    "The sweep in both pruning orders": (artifacts.PRUNE_ORDERS_PLOT, "prune-orders"),
    "Pruned and fine-pruned B' and their repaired nets G (test data)": (artifacts.REPAIRED_PLOT, "evaluate-repaired"),
    "Clean validation images and their poisoned counterparts": (artifacts.SAMPLES_PLOT, "fetch-data"),
}


def _read(path, stage: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise BadInput(f"{path}: not found; run the {stage} stage first") from None


def _leaderboard():
    """The suite's leaderboard (committed), or None in a copy without it."""
    if not (Path(LEADERBOARD).is_file() and Path(LEADERBOARD_PLOT).is_file()):
        return None
    rows = pd.read_csv(LEADERBOARD)
    return (leaderboard.leaderboard_markdown(rows) + "\n" + report.leaderboard_grid(rows),
            _read(LEADERBOARD_PLOT, "suite leaderboard"))


@cli
def main():
    cfg = {"prune": params.load("prune"), "finetune": params.load("finetune")}
    figures = {}
    for title, (path, stage) in FIGURES.items():
        png = _read(path, stage)
        if not png.startswith(b"\x89PNG\r\n\x1a\n"):
            raise BadInput(f"{path}: not a PNG image; run `dvc repro --force {stage}`")
        figures[title] = png
    text = report.report_markdown(
        artifacts.read_json(artifacts.ATTACK_METRICS, "fetch-data"),
        artifacts.read_json(artifacts.BASELINE_METRICS, "baseline"),
        artifacts.read_json(artifacts.FINE_PRUNE_METRICS, "evaluate-repaired"),
        _read(artifacts.RESULTS_MD, "evaluate-repaired").decode("utf-8", "replace"),
        cfg, figures, artifacts.read_json(artifacts.DEFENSES_METRICS, "evaluate-defenses"), _leaderboard(),
        artifacts.read_json(artifacts.SCAN_METRICS, "scan"), artifacts.read_json(artifacts.PRUNE_ORDERS_METRICS, "prune-orders"))
    page = report.report_html(text)
    write_text(artifacts.REPORT, page)
    print(f"{artifacts.REPORT}: {len(page) // 1024} KiB")


if __name__ == "__main__":
    main()
