"""suite scores@NAME: one net's scores (its attack, B's and each defense's metrics, the scan,
the times) into suite/scores/NAME.json, the committed file the table and leaderboard read."""
import sys

from badnet_repair import scores, suite
from badnet_repair.errors import BadInput, cli


@cli
def main():
    if len(sys.argv) != 2:
        raise BadInput("usage: suite_scores.py NAME (a BadNet of suite/params.yaml)")
    name = sys.argv[1]
    if name not in suite.entries():
        raise BadInput(f"{suite.SUITE_PARAMS}: no BadNet named {name!r}")
    scores.collect_scores(name)


if __name__ == "__main__":
    main()
