"""suite table: suite/metrics/badnets.csv, one row per net of the attack suite whose scores
are in; the nets not run yet are named on stderr."""
from badnet_repair import leaderboard, suite
from badnet_repair.atomic import atomic_path
from badnet_repair.errors import cli

OUT = leaderboard.TABLE


@cli
def main():
    names = leaderboard.scored(suite.entries())
    rows = leaderboard.table(names)
    with atomic_path(OUT) as tmp:
        rows.to_csv(tmp, index=False)
    print(leaderboard.markdown(rows), end="")  # the suite table (docs/pipeline.md)


if __name__ == "__main__":
    main()
