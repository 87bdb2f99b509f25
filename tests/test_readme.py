"""Every `raysearch` command the README shows, run in order as a newcomer would, on the test's
small data and budget: the README cannot drift from what raysearch does. (The install and test
commands are CI itself and tests/test_package.py; the Python example is tests/test_api.py.)"""

import hashlib
import re
import shlex
import shutil
import tempfile
from pathlib import Path

import pytest
from conftest import REPO, kill_matching, micro, run_cli

pytestmark = pytest.mark.slow

SMALL_TRAIN = ["--epochs", "1", "--width", "8", "--depth", "2", "--n-boot", "20"]
CLUSTER = ["--num-cpus", "2", "--max-concurrent", "2"]


def readme_commands() -> list[list[str]]:
    """The README's `raysearch ...` lines of its bash blocks, comments dropped, split as a shell would."""
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith("raysearch ")]


def small(args: list[str]) -> list[str]:
    """The same command on the test's budget: fewer trials and seeds, tiny models, 2 cores."""
    args = [a.replace("RUN_DIR", "runs/readme") for a in args]
    if args[:2] == ["data", "download"]:
        return args + ["--base-url", "MIRROR"]
    if args[0] == "train":
        return args + SMALL_TRAIN + (["--embedding-size", "16"] if "--teacher" not in args else [])
    if args[0] == "report":
        return [a if a != "5" else "1" for a in args] + CLUSTER
    if args[0] in ("export", "predict", "data"):
        return args
    # a search: two trials per arm and one teacher per size, on the tiny or the micro space
    args = ["2" if prev == "--trials" else a for prev, a in zip(["", *args[:-1]], args, strict=True)]
    space = [] if "--space" in args else ["--space", "micro.yaml", "--storage", "runs", "--name", "readme"]
    return args + space + ["--teacher-trials", "1", "--finalists", "1", "--finalist-seeds", "1", *CLUSTER]


def test_the_readme_shows_the_commands_this_test_runs():
    kinds = [" ".join(a[:2]) if a[0] in ("data", "train") else a[0] for a in readme_commands()]
    assert kinds.count("--data") == 1 and kinds.count("--leads") == 1  # the demo; the real search
    for kind in ("data download", "data info", "report", "export", "predict", "train --leads"):
        assert kind in kinds, kind


def test_every_readme_command_runs(real_ptbxl, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mirror = tmp_path / "mirror"  # PhysioNet's layout with its SHA256SUMS.txt, read through file://
    shutil.copytree(real_ptbxl, mirror)
    sums = [
        f"{hashlib.sha256(f.read_bytes()).hexdigest()} {f.relative_to(mirror).as_posix()}"
        for f in sorted(p for p in mirror.rglob("*") if p.is_file())
    ]
    (mirror / "SHA256SUMS.txt").write_text("\n".join(sums) + "\n")
    (tmp_path / "micro.yaml").write_text(micro())
    (tmp_path / "scans").mkdir()  # the records `predict` is shown on, and their metadata
    for name, ecg_id in (("rec042", 1), ("rec043", 2)):
        src = real_ptbxl / f"records100/00000/{ecg_id:05d}_lr"
        shutil.copy(src.with_suffix(".dat"), tmp_path / "scans" / f"{name}.dat")
        header = src.with_suffix(".hea").read_text().replace(src.name, name)
        (tmp_path / "scans" / f"{name}.hea").write_text(header)
    (tmp_path / "patients.csv").write_text("record,age,sex,height,weight\nrec042,56,1,,63\nrec043,19,0,,70\n")
    ray_tmp = tempfile.mkdtemp(prefix="rsr", dir="/tmp")  # short: Ray's socket paths hold 107 bytes
    env = {"RAY_TMPDIR": ray_tmp, "RAY_AUTH_MODE": "disabled"}
    try:
        for args in map(small, readme_commands()):
            args = [a.replace("MIRROR", mirror.as_uri() + "/") for a in args]
            done = run_cli(*args, env=env, cwd=tmp_path)
            assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-3000:])
    finally:
        kill_matching(ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert (tmp_path / "runs" / "readme" / "report.md").is_file()
    assert Path("student-4.onnx").is_file() and Path("p.csv").is_file()
    assert (tmp_path / "runs" / "s4" / "metrics.json").is_file()
