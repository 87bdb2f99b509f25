"""First-load (conversion) and cached-load time of a PTB-XL folder.

    python bench/bench_data.py /path/to/ptb-xl [--repeats 5]

The first load runs with an empty cache (a temporary RAYSEARCH_CACHE), so it includes reading every
record with wfdb on all cores and writing the memory-mapped cache; the cached loads are repeated
and their median reported.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("path")
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["RAYSEARCH_CACHE"] = cache
        from raysearch.data.ptbxl import load_ptbxl

        t0 = time.perf_counter()
        ds = load_ptbxl(a.path, progress=False)
        first = time.perf_counter() - t0
        cached = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            load_ptbxl(a.path, progress=False)
            cached.append(time.perf_counter() - t0)
    print(
        json.dumps(
            {
                "command": " ".join(sys.argv),
                "date": time.strftime("%Y-%m-%d"),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "records": len(ds),
                "first_load_seconds": round(first, 2),
                "cached_load_median_seconds": round(statistics.median(cached), 3),
                "cached_load_all_seconds": [round(c, 3) for c in cached],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
