"""How long `raysearch --help` takes for each command: the median of N fresh processes (what a
user waits for). Another source tree (e.g. an older commit's checkout) can be measured beside.

    python bench/bench_help.py --repeats 10 [--tree /path/to/other/checkout]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = ([], ["report"], ["train"], ["data", "info"], ["export"], ["predict"])


def median_seconds(tree: Path, command: list[str], repeats: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}  # this tree's raysearch before any installed one
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "raysearch", *command, "--help"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            cwd=tree,
        )
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--tree", type=Path, action="append", default=[], help="another checkout to time beside")
    a = p.parse_args()
    trees = [Path(__file__).resolve().parents[1], *a.tree]
    rows = {}
    for command in COMMANDS:  # the trees alternate command by command: the same machine noise
        name = " ".join(["raysearch", *command, "--help"])
        rows[name] = {str(t): round(median_seconds(t, command, a.repeats), 3) for t in trees}
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
