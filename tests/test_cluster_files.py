"""cluster.yaml validated offline by Ray's own autoscaler checks, and a multi-node search on one machine."""

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest
import yaml
from conftest import (
    REPO,
    finish,
    kill_matching,
    micro,
    run_cli,
    running_trial,
    start_search,
    trial_dirs,
    wait_for,
)


def _validate(config: dict) -> dict:
    """What `ray up` runs on the file before it contacts a cloud."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


@pytest.mark.parametrize("name", ["cluster.yaml", "cluster-onprem.yaml"])
def test_cluster_files_validate(name):
    config = yaml.safe_load((REPO / name).read_text())
    prepared = _validate(config)
    assert prepared["max_workers"] >= 1
    assert "raysearch" in " ".join(prepared["setup_commands"])
    if name == "cluster.yaml":
        types = prepared["available_node_types"]
        assert types["head"]["resources"]["GPU"] == 0
        assert all(types[t]["resources"]["GPU"] == 1 for t in ("gpu_spot", "gpu_ondemand"))
        assert types["gpu_spot"]["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"
        assert "data download" in " ".join(prepared["head_setup_commands"])
        text = (REPO / name).read_text().lower()
        assert "aws_secret" not in text and "access_key" not in text


def test_broken_cluster_file_is_rejected():
    config = yaml.safe_load((REPO / "cluster.yaml").read_text())
    broken = copy.deepcopy(config)
    broken["available_node_types"]["gpu_spot"]["resources"] = "one GPU"
    with pytest.raises(Exception, match="is not of type 'object'"):
        _validate(broken)
    broken = copy.deepcopy(config)
    broken["max_workers"] = "eight"
    with pytest.raises(Exception, match="is not of type 'integer'"):
        _validate(broken)


@pytest.fixture()
def cluster():
    """Head (no CPU: it only holds the driver's objects) and two 1-CPU worker nodes on this machine."""
    ray_tmp = tempfile.mkdtemp(prefix="rsc", dir="/tmp")
    os.environ["RAY_TMPDIR"] = ray_tmp
    os.environ["RAY_AUTH_MODE"] = "disabled"
    from ray.cluster_utils import Cluster

    c = Cluster(
        initialize_head=True, connect=False, head_node_args={"num_cpus": 0, "include_dashboard": False}
    )
    workers = [c.add_node(num_cpus=1) for _ in range(2)]
    c.wait_for_nodes()
    yield c, workers, ray_tmp
    c.shutdown()
    kill_matching(ray_tmp)
    shutil.rmtree(ray_tmp, ignore_errors=True)
    os.environ.pop("RAY_TMPDIR", None)


@pytest.mark.slow
def test_multi_node_search_spreads_and_survives_a_lost_node(cluster, tmp_path, synthetic_ptbxl):
    c, workers, ray_tmp = cluster
    space = tmp_path / "micro.yaml"
    space.write_text(micro(epochs=20, grace=20))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    storage = tmp_path / "runs"
    proc = start_search(
        env,
        space,
        storage,
        synthetic_ptbxl,
        "--leads",
        "4",
        "--trials",
        "4",
        "--no-baseline",
        "--address",
        c.address,
        "--max-failures",
        "3",
    )
    run_dir = storage / "run"

    wait_for(
        proc,
        lambda: running_trial(run_dir, "student-4", 20) is not None,
        what="a student trial mid-training",
    )
    busy = running_trial(run_dir, "student-4", 20)["node_id"]
    victim = next(w for w in workers if w.node_id == busy)
    c.remove_node(victim)  # a worker node goes away mid-trial
    c.add_node(num_cpus=1)  # and the autoscaler (here: the test) brings another
    out = finish(proc)
    summary = json.loads((run_dir / "summary.json").read_text())
    r = summary["leads"]["4"]["student"]
    assert r["trials"] == 4 and r["errored"] == 0 and r["restarted"] >= 1, out[-3000:]

    nodes = set()
    for d in trial_dirs(run_dir, "student-4"):
        nodes.update(json.loads(line)["node_id"] for line in (d / "result.json").read_text().splitlines())
    assert len(nodes) >= 2  # trials ran on several nodes
    head_id = c.head_node.node_id
    assert head_id not in nodes  # the head has no CPU: every trial ran on a worker node ...
    # ... so the data reached them only through the object store: Ray's accounting shows a copy of
    # the signals on worker nodes as well as the driver's primary copy on the head
    signal_bytes = summary["records"] * 12 * 1000 * 2
    per_node = summary["object_store"]["after_teachers"]["bytes_used_per_node"]
    assert per_node[head_id] >= signal_bytes
    assert max(v for k, v in per_node.items() if k != head_id) >= signal_bytes, per_node


def _can_mount_privately() -> bool:
    """Whether this machine lets us give one process its own mount namespace (root, unshare)."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return False
    probe = tempfile.mkdtemp(prefix="rsns", dir="/tmp")
    try:
        r = subprocess.run(
            ["unshare", "-m", "sh", "-c", f"mount -t tmpfs none {probe}"], capture_output=True, timeout=30
        )
        return r.returncode == 0
    finally:
        shutil.rmtree(probe, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.skipif(not _can_mount_privately(), reason="needs unshare -m and mount (root)")
def test_node_local_storage_is_refused_on_several_nodes(tmp_path, synthetic_ptbxl):
    """A worker node that cannot see --storage (here: its own mount namespace hides the folder
    under an empty tmpfs) makes the search refuse to start, naming how many nodes are blind."""
    from ray.cluster_utils import Cluster

    ray_tmp = tempfile.mkdtemp(prefix="rsl", dir="/tmp")
    env = {**os.environ, "RAY_TMPDIR": ray_tmp, "RAY_AUTH_MODE": "disabled"}
    os.environ.update(RAY_TMPDIR=ray_tmp, RAY_AUTH_MODE="disabled")
    storage = tmp_path / "storage"
    storage.mkdir()
    c = Cluster(
        initialize_head=True, connect=False, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    start = f"{sys.executable} -m ray.scripts.scripts start --address {c.address} --num-cpus 1 --block"
    node = subprocess.Popen(
        ["unshare", "-m", "sh", "-c", f"mount -t tmpfs none {storage} && exec {start}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        import ray

        ray.init(address=c.address)
        deadline = time.monotonic() + 120
        while sum(n["Alive"] for n in ray.nodes()) < 2:
            assert time.monotonic() < deadline and node.poll() is None, "the second node did not join"
            time.sleep(1)
        ray.shutdown()
        r = run_cli(
            "--address",
            c.address,
            "--data",
            str(synthetic_ptbxl),
            "--storage",
            str(storage),
            "--name",
            "run",
            env=env,
        )
        assert r.returncode == 2, r.stderr[-2000:]
        assert f"--storage {storage}: not visible from 1 of 2 nodes" in r.stderr
        assert "Traceback" not in r.stderr
        # a request no node of the joined cluster meets is refused at once, not left pending
        t0 = time.monotonic()
        r = run_cli("--address", c.address, "--data", str(synthetic_ptbxl), "--storage", str(tmp_path / "s2"),
                    "--name", "run", "--gpus-per-trial", "1", env=env)  # fmt: skip
        assert r.returncode == 2 and "--gpus-per-trial 1: no node has that many" in r.stderr, r.stderr[-2000:]
        assert time.monotonic() - t0 < 60 and "Traceback" not in r.stderr
    finally:
        ray.shutdown()
        os.killpg(node.pid, signal.SIGTERM)
        node.wait(timeout=60)
        c.shutdown()
        kill_matching(ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)
        os.environ.pop("RAY_TMPDIR", None)


@pytest.mark.slow
def test_the_onprem_script_writes_a_valid_cluster_file_and_starts_nothing():
    """bench/rayup_local.sh's dry parts: the copy of cluster-onprem.yaml that `ray up` reads there
    (addresses, key and workers changed, nothing else) passes Ray's own checks. The real run needs
    root, an SSH server and about 4 minutes: docs/cluster-onprem-run.md is its transcript."""
    env = {**os.environ, "PYTHON": sys.executable}
    for extra in ((), ("--worker",)):
        done = subprocess.run(
            ["bash", str(REPO / "bench" / "rayup_local.sh"), "--dry-run", *extra],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "valid; differs from" in done.stdout and "nothing started" in done.stdout
        assert "['auth', 'max_workers', 'min_workers', 'provider']" in done.stdout
    script = str(REPO / "bench" / "rayup_local.sh")
    refused = subprocess.run(["bash", script, "--bogus"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "unknown option --bogus" in refused.stderr


@pytest.mark.parametrize("name", ["cluster.yaml", "cluster-onprem.yaml"])
def test_the_cluster_files_keep_the_dashboard_on_the_heads_loopback(name):
    """Ray's dashboard (and its job server, which runs code) listens where --dashboard-host says;
    the README reaches it with `ray dashboard FILE`, an SSH tunnel."""
    import yaml

    starts = [
        c for c in yaml.safe_load((REPO / name).read_text())["head_start_ray_commands"] if "ray start" in c
    ]
    assert starts and all("--dashboard-host=127.0.0.1" in c for c in starts), starts
