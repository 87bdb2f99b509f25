"""The Ray session refuses, at once, a trial request no node can meet (Tune would wait forever)."""

import os
import tempfile

import pytest
from conftest import kill_matching, run_cli


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
