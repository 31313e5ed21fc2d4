"""suite leaderboard: suite/metrics/leaderboard.csv, one row per (BadNet, defense), and
suite/plots/leaderboard.png (ASR against clean loss)."""
from badnet_repair import plots, suite
from badnet_repair.atomic import atomic_path
from badnet_repair.errors import cli

OUT, FIGURE = suite.LEADERBOARD, suite.LEADERBOARD_PLOT


@cli
def main():
    rows = suite.leaderboard(suite.entries(), suite.defenses())
    with atomic_path(OUT) as tmp:
        rows.to_csv(tmp, index=False)
    plots.leaderboard_figure(rows, FIGURE)
    print(suite.leaderboard_markdown(rows), end="")  # the leaderboard summary (README, docs/defenses.md)


if __name__ == "__main__":
    main()
