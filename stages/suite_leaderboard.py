"""suite leaderboard: suite/metrics/leaderboard.csv, one row per (net, defense), each net
marked tuning or evaluation (suite/params.yaml: tuning), and suite/plots/leaderboard.png
(ASR against clean loss). Built from the nets whose scores are in; the nets not run yet are
named on stderr."""
from badnet_repair import leaderboard, suite
from badnet_repair.atomic import atomic_path
from badnet_repair.errors import cli

OUT, FIGURE = leaderboard.LEADERBOARD, leaderboard.LEADERBOARD_PLOT


@cli
def main():
    names = leaderboard.scored(suite.entries())
    rows = leaderboard.leaderboard(names, suite.defenses(), leaderboard.tuning())
    with atomic_path(OUT) as tmp:
        rows.to_csv(tmp, index=False)
    leaderboard.figure(rows, FIGURE)
    print(leaderboard.leaderboard_markdown(rows), end="")  # the leaderboard summary (README, docs/defenses.md)


if __name__ == "__main__":
    main()
