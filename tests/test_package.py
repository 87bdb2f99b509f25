"""The package as users install it: a wheel built from the repository, installed without the source
tree, runs a search from another folder through its `raysearch` script and the shipped spaces."""

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, kill_matching

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel, built from the repository and installed (no dependencies) into a folder of its own."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # a copy of what the wheel is built from: the build leaves the checkout alone
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for folder in ("raysearch", "search_spaces"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", root]
    subprocess.run([*build, str(source)], check=True, capture_output=True, timeout=300)
    (wheel,) = root.glob("raysearch-*.whl")
    target = root / "site"
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)]
    subprocess.run(install, check=True, capture_output=True, timeout=300)
    return wheel


def test_the_wheel_carries_the_spaces_and_one_version(installed):
    names = zipfile.ZipFile(installed).namelist()
    for space in ("default", "cpu", "tiny"):
        assert f"raysearch/search_spaces/{space}.yaml" in names
    assert not any(n.startswith(("tests/", "search_spaces/")) for n in names)
    import raysearch

    assert installed.name.startswith(f"raysearch-{raysearch.__version__}-")


def test_an_installed_wheel_runs_a_search_from_another_folder(installed, tmp_path):
    site = installed.parent / "site"
    ray_tmp = tempfile.mkdtemp(prefix="rs", dir="/tmp")  # short: Ray's socket paths hold 107 bytes
    env = {
        **os.environ,
        "PYTHONPATH": str(site),  # the installed copy comes before the checkout's editable install
        "RAY_TMPDIR": ray_tmp,
        "RAY_AUTH_MODE": "disabled",
        "RAYSEARCH_CACHE": str(tmp_path / "cache"),
    }
    where = subprocess.run(
        [sys.executable, "-c", "import raysearch; print(raysearch.__file__)"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(site)  # not the source tree
    args = ["--data", "synthetic", "--synthetic-records", "800", "--space", "tiny", "--leads", "2"]
    args += ["--trials", "2", "--teacher-trials", "1", "--num-cpus", "2", "--max-concurrent", "2"]
    try:
        done = subprocess.run(
            [str(site / "bin" / "raysearch"), *args, "--storage", "runs", "--name", "wheel"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=900,
        )
    finally:
        kill_matching(ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run_dir = tmp_path / "runs" / "wheel"
    assert (run_dir / "summary.md").is_file() and (run_dir / "best" / "student-2").is_dir()
    assert "tiny.yaml" in (run_dir / "summary.md").read_text()
