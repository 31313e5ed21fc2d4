"""fetch-data: build or fetch the four lab3 data files and the BadNet (params: data)."""
import time

from badnet_repair import params, sources
from badnet_repair.errors import cli


@cli
def main():
    start = time.perf_counter()
    sources.fetch(params.load("data"))
    print(f"fetch-data done in {time.perf_counter() - start:.1f}s")


if __name__ == "__main__":
    main()
