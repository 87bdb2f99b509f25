"""The Ray session refuses, at once, a trial request no node can meet (Tune would wait forever)."""

import os
import tempfile

import pytest
from conftest import REPO, kill_matching, run_cli


@pytest.mark.parametrize(
    "option,fragment",
    [
        (("--gpus-per-trial", "1"), "--gpus-per-trial 1: this machine has no GPU"),
        (("--cpus-per-trial", "64"), "--cpus-per-trial 64: no node has that many; the largest has 2"),
    ],
)
def test_unmeetable_requests_fail_fast(tmp_path, real_ptbxl, option, fragment):
    ray_tmp = tempfile.mkdtemp(prefix="rss", dir="/tmp")
    env = {"RAY_TMPDIR": ray_tmp, "RAY_AUTH_MODE": "disabled"}
    try:
        args = ["--data", str(real_ptbxl), "--storage", str(tmp_path), "--name", "run", "--num-cpus", "2"]
        r = run_cli(*args, *option, env=env)  # run_cli's timeout (600 s) would catch a hang
    finally:
        kill_matching(ray_tmp)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert fragment in r.stderr and r.stderr.count("raysearch: error:") == 1
    assert os.path.isdir(tmp_path / "run")  # what the run wrote so far stays


def test_a_joined_cluster_counts_what_its_autoscaler_can_add():
    import yaml

    from raysearch.session import ClusterOptions, unmet_request

    node_types = yaml.safe_load((REPO / "cluster.yaml").read_text())["available_node_types"]
    head = [{"CPU": 8.0}]  # an autoscaling cluster before any worker is up
    joined = ClusterOptions(address="10.0.0.1:6379", gpus_per_trial=0.25, cpus_per_trial=1)
    assert unmet_request(joined, head, node_types) is None  # the g5 node types have a GPU
    assert unmet_request(joined, head) == "--gpus-per-trial 0.25: no node has that many; the largest has 0"
    too_many = ClusterOptions(address="10.0.0.1:6379", gpus_per_trial=2)
    assert unmet_request(too_many, head, node_types) == (
        "--gpus-per-trial 2: no node and no node type the autoscaler can add has that many; the largest has 1"
    )
    cpus = ClusterOptions(address="10.0.0.1:6379", cpus_per_trial=16)
    assert "--cpus-per-trial 16: no node and no node type" in unmet_request(cpus, head, node_types)
    assert unmet_request(ClusterOptions(gpus_per_trial=1), [{"CPU": 2.0}]) == (
        "--gpus-per-trial 1: this machine has no GPU"
    )
