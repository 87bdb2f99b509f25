"""The Ray cluster: a local Ray reachable from this machine only; a trial request no node can
meet refused at once (Tune would wait forever)."""

import ipaddress
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from conftest import REPO, kill_matching, run_cli


@pytest.mark.parametrize(
    "option,fragment",
    [
        (("--gpus-per-trial", "1"), "--gpus-per-trial 1: this machine has no GPU"),
        (("--cpus-per-trial", "64"), "--cpus-per-trial 64: no node has that many; the largest has 2"),
    ],
)
@pytest.mark.slow
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
    # nothing was trained: no RUN_DIR is left to refuse the corrected command as "exists"
    assert not os.path.exists(tmp_path / "run")


def test_a_joined_cluster_counts_what_its_autoscaler_can_add():
    import yaml

    from raysearch.searching.cluster import unmet_request
    from raysearch.searching.options import ClusterOptions

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


def descendants(root: int) -> set[int]:
    """`root` and every process below it (a local Ray's GCS and raylet are the driver's children;
    its workers and agents the raylet's)."""
    children: dict[int, list[int]] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(pid))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo += children.get(pid, [])
    return found


def listening_addresses(pids: set[int]) -> dict[str, list]:
    """{process name: [address, ...]} of the TCP sockets the processes `pids` listen on, read
    from /proc (IPv6 included: a wildcard listener shows there as ::)."""
    listening = {}  # socket inode -> address
    for table, size in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                raw = bytes.fromhex(fields[1].split(":")[0])
                # the kernel prints each 32-bit word in host (little-endian) order
                ip = b"".join(raw[i : i + 4][::-1] for i in range(0, size, 4))
                listening[fields[9]] = ipaddress.ip_address(ip)
    found = {}
    for pid in pids:
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            inode = target[len("socket:[") : -1] if target.startswith("socket:[") else None
            if inode in listening:
                found.setdefault(f"{name}[{pid}]", []).append(listening[inode])
    return found


@pytest.mark.slow
def test_a_local_ray_listens_on_loopback_only(tmp_path, monkeypatch):
    """Ray's default on Linux is every interface (its node takes the machine's address); the
    search's own local Ray must not be reachable from other machines."""
    import ray

    from raysearch.searching.cluster import ray_cluster
    from raysearch.searching.options import ClusterOptions
    from raysearch.searching.rundir import RunDir

    ray_tmp = tempfile.mkdtemp(prefix="rsl", dir="/tmp")
    monkeypatch.setenv("RAY_TMPDIR", ray_tmp)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    try:
        with ray_cluster(ClusterOptions(address=None, num_cpus=1), RunDir(str(tmp_path), "run")):
            worker = ray.get(ray.remote(num_cpus=1)(lambda: os.getpid()).remote())  # a worker listens too
            found = listening_addresses(descendants(os.getpid()))
            node_ip = ray.util.get_node_ip_address()
            (temp,) = Path(ray_tmp).iterdir()  # the local Ray's own folder: only its owner may enter
            assert temp.name.startswith("rs-") and temp.stat().st_mode & 0o777 == 0o700
            assert (temp / "ray").is_dir()
        assert not temp.exists()  # removed when the session ended
    finally:
        kill_matching(ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    names = " ".join(found)
    for part in ("gcs_server", "raylet", "ray::RuntimeEnv", f"[{worker}]"):
        assert part in names, found
    exposed = {
        name: ips
        for name, ips in found.items()
        if not all(
            ip.is_loopback or (ip.version == 6 and ip.ipv4_mapped is not None and ip.ipv4_mapped.is_loopback)
            for ip in ips
        )
    }
    assert not exposed, f"listening beyond loopback: {exposed}"
    assert node_ip == "127.0.0.1"
    assert os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") is None  # put back after the start
