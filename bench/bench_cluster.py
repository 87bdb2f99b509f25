"""A multi-node search on one machine: trials per node and wall time.

    python bench/bench_cluster.py --trials 8

Starts `ray.cluster_utils.Cluster` (a head with no CPU, which only holds the driver's objects, and
two 1-CPU worker nodes), runs `python -m raysearch --address ...` with the tiny space on the
cached synthetic data, and counts from every trial's result.json on which node it ran.
"""

import argparse
import collections
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from bench_search import run_search  # bench/ is the script's folder


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--data", default="synthetic")
    a = p.parse_args()
    os.environ.setdefault("RAY_TMPDIR", tempfile.mkdtemp(prefix="rsb", dir="/tmp"))
    os.environ["RAY_AUTH_MODE"] = "disabled"
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True, connect=False, head_node_args={"num_cpus": 0, "include_dashboard": False}
    )
    workers = [cluster.add_node(num_cpus=1) for _ in range(a.workers)]
    cluster.wait_for_nodes()
    names = {w.node_id: f"worker{i + 1}" for i, w in enumerate(workers)} | {cluster.head_node.node_id: "head"}
    storage = Path(tempfile.mkdtemp(prefix="rsbench"))
    extra = ["--address", cluster.address, "--max-concurrent", str(a.workers), "--teacher-trials", "1"]
    try:
        wall, summary = run_search(a.data, a.trials, storage, "cluster", extra)
    finally:
        cluster.shutdown()
    per_stage = {}  # RUN_DIR/trials/ARM-ID: the arm is the name without its trial id
    for result in (storage / "cluster" / "trials").glob("*-*/result.json"):
        stage = result.parent.name.rsplit("-", 1)[0]
        node = json.loads(result.read_text().splitlines()[-1])["node_id"]
        per_stage.setdefault(stage, collections.Counter())[names.get(node, node[:8])] += 1
    per_stage = {stage: dict(counts) for stage, counts in sorted(per_stage.items())}
    print(
        json.dumps(
            {
                "command": " ".join(sys.argv),
                "date": time.strftime("%Y-%m-%d"),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "nodes": f"head (0 CPU) + {a.workers} x 1-CPU workers",
                "wall_s": wall,
                "trials_per_node": per_stage,
                "object_store_after_teachers": summary["object_store"]["after_teachers"],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
