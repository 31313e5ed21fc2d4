"""suite badnet@NAME: one BadNet of the attack suite (suite/params.yaml), made in
suite/badnets/NAME/ by fetch-data and baseline (params: data, and the suite's entry)."""
import sys

from badnet_repair import params, suite
from badnet_repair.errors import cli


@cli
def main():
    name = sys.argv[1]
    cfg = suite.badnet_params(name, {"data": params.load("data")})
    suite.run_stages(name, [["fetch_data.py"], ["baseline.py"]], cfg)


if __name__ == "__main__":
    main()
