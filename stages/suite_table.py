"""suite table: suite/metrics/badnets.csv, one row per BadNet of the attack suite."""
from badnet_repair import leaderboard, suite
from badnet_repair.atomic import atomic_path
from badnet_repair.errors import cli

OUT = leaderboard.TABLE


@cli
def main():
    rows = leaderboard.table(suite.entries())
    with atomic_path(OUT) as tmp:
        rows.to_csv(tmp, index=False)
    print(leaderboard.markdown(rows), end="")  # the suite table (docs/pipeline.md)


if __name__ == "__main__":
    main()
