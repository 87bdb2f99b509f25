"""Shared fixtures and helpers: a real PTB-XL subset, a synthetic set, and running searches.

The real subset is the repository's own fixture (tests/fixtures: 400 real PTB-XL 1.0.1 records,
CC BY 4.0), extracted once per test session; `RAYSEARCH_TEST_PTBXL` may name another copy instead.
Searches run `python -m raysearch` in a subprocess with their own local Ray (RAY_TMPDIR in a
short temp dir, token auth off), two trials at a time on a 2-core machine.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "ptbxl-1.0.1-first400.tar.xz"
FIXTURE_SUMS = REPO / "tests" / "fixtures" / "ptbxl-1.0.1-first400.sha256"
SUBSET_RECORDS = 400


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Every test session converts into its own cache, never the user's ~/.cache/raysearch."""
    old = {k: os.environ.get(k) for k in ("RAYSEARCH_CACHE", "RAYSEARCH_DATA")}
    os.environ["RAYSEARCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    os.environ.pop("RAYSEARCH_DATA", None)
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def extract_fixture(dest: Path) -> Path:
    """The repository's real PTB-XL subset, extracted into `dest`."""
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(dest, filter="data")
    return dest


@pytest.fixture(scope="session")
def real_ptbxl(tmp_path_factory) -> Path:
    """A real PTB-XL 1.0.1 subset in PhysioNet's layout (the first 400 records by ecg_id)."""
    given = os.environ.get("RAYSEARCH_TEST_PTBXL")
    if given:
        return Path(given)
    return extract_fixture(tmp_path_factory.mktemp("ptbxl"))


@pytest.fixture(scope="session")
def synthetic_ptbxl(tmp_path_factory) -> Path:
    from raysearch.data.synthetic import write_synthetic

    return write_synthetic(tmp_path_factory.mktemp("synthetic"), records=500, seed=0)


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory, real_ptbxl) -> dict[str, Path]:
    """Tiny trained model folders on the real subset (write_run's layout, one epoch each), as the
    search leaves them: a teacher, a 2-lead student of it (bf16, overlapping evaluation windows)
    and a 3-lead baseline trained and evaluated on whole records (no windows)."""
    from raysearch.data.ptbxl import load_ptbxl
    from raysearch.training.checkpoint import load_checkpoint
    from raysearch.training.config import TrainConfig
    from raysearch.training.evaluation import final_metrics, write_run
    from raysearch.training.stage import train_stage

    data = load_ptbxl(real_ptbxl, progress=False)
    root = tmp_path_factory.mktemp("models")
    small = {"epochs": 1, "width": 8, "depth": 2, "embedding_size": 16, "n_boot": 20, "precision": "fp32"}
    configs = {
        "teacher": TrainConfig(stage="teacher", leads="12", **small),
        "student-2": TrainConfig(
            stage="student", leads="2", eval_stride_seconds=1.0, **{**small, "precision": "bf16"}
        ),
        "baseline-3": TrainConfig(stage="baseline", leads="3", crop_seconds=0, **small),
    }
    dirs = {}
    for name, cfg in configs.items():
        teacher = load_checkpoint(dirs["teacher"]) if cfg.stage == "student" else None
        result = train_stage(cfg.resolved(), data, teacher=teacher, progress=False)
        dirs[name] = root / name
        write_run(dirs[name], result, *final_metrics(result, data))
    return dirs


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`python -m raysearch ARGS` in a subprocess (exit codes and stderr as a user sees them)."""
    return subprocess.run(
        [sys.executable, "-m", "raysearch", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
        cwd=cwd,
    )


def run_main(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`raysearch ARGS` in this process (cli.main), read like run_cli's result: its exit status and
    what it printed. For what fails or finishes before Ray starts: the fast tier's CLI tests."""
    import contextlib
    import io
    from unittest import mock

    from raysearch.cli import main

    out, err = io.StringIO(), io.StringIO()
    with (
        mock.patch.dict(os.environ, env or {}),
        contextlib.chdir(cwd or Path.cwd()),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            code = main(list(args))
        except SystemExit as e:  # argparse's own errors and --help
            code = e.code if isinstance(e.code, int) else 2
    return subprocess.CompletedProcess(["raysearch", *args], code, out.getvalue(), err.getvalue())


# ------------------------------------------------------------------------------ searches

MICRO = """
constants: {epochs: EPOCHS, batch_size: 64, crop_seconds: 2.5, precision: fp32, n_boot: 50}
teacher:
  constants: {arch: inception, width: 4, depth: 3, lr: 5.0e-3}
student:
  constants: {arch: resnet1d, width: 8, depth: 2}
  space:
    alpha: {loguniform: [0.1, 3.0]}
    sim: {choice: [l1, l2, cosine]}
    embedding_size: {choice: [16]}
    lr: {loguniform: [1.0e-3, 1.0e-2]}
asha: {grace_period: GRACE, reduction_factor: 2}
"""


def micro(epochs: int = 2, grace: int = 1) -> str:
    """The micro space; fault tests use long trials that ASHA does not stop, so that a kill lands
    in a running trial whatever the machine's speed."""
    return MICRO.replace("EPOCHS", str(epochs)).replace("GRACE", str(grace))


@pytest.fixture()
def ray_env(tmp_path):
    """Environment for a search subprocess: short RAY_TMPDIR, no token auth, private cache."""
    ray_tmp = tempfile.mkdtemp(prefix="rs", dir="/tmp")
    space = tmp_path / "micro.yaml"
    space.write_text(micro())
    env = {**os.environ, "RAY_TMPDIR": ray_tmp, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    yield env, space, tmp_path / "runs"
    kill_matching(ray_tmp)  # anything a killed driver left behind
    shutil.rmtree(ray_tmp, ignore_errors=True)


def mlflow_runs(uri: str, experiment: str = "run") -> list:
    """Every MLflow run of `experiment` in the tracking store `uri` (--mlflow's experiment is named
    like the search's run)."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id])


def kill_matching(fragment: str) -> int:
    """SIGKILL every process whose command line or environment contains `fragment`; returns how
    many. A Ray temp dir names a test's own Ray: its raylet and GCS carry it in their command
    lines, its workers (renamed ray::...) only in their environment."""
    killed = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
                env = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if (fragment in cmd or fragment in env) and int(pid) != os.getpid():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                    killed += 1
                except OSError:
                    pass
    return killed


def start_search(env, space, storage, data, *extra, name="run"):
    """`python -m raysearch` with the micro space, 2 CPUs, 2 trials at a time, in the background."""
    args = [
        sys.executable,
        "-m",
        "raysearch",
        "--space",
        str(space),
        "--data",
        str(data),
        "--storage",
        str(storage),
        "--name",
        name,
        "--num-cpus",
        "2",
        "--max-concurrent",
        "2",
        "--teacher-trials",
        "1",
        "--finalists",  # the tests of finalists pass their own (the last one given wins)
        "0",
        *extra,
    ]
    return subprocess.Popen(
        args,
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def finish(proc, timeout=900) -> str:
    """Wait for a search; assert it succeeded; its output."""
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out


def trial_dirs(run_dir: Path, stage: str) -> list[Path]:
    return sorted(p for p in (run_dir / "trials").glob(f"{stage}-*") if p.is_dir())


def finished_trials(run_dir: Path, stage: str, epochs: int = 2) -> list[Path]:
    done = []
    for d in trial_dirs(run_dir, stage):
        lines = (d / "result.json").read_text().splitlines() if (d / "result.json").is_file() else []
        if any(json.loads(line).get("training_iteration") == epochs for line in lines):
            done.append(d)
    return done


def running_trial(run_dir: Path, stage: str, epochs: int) -> dict | None:
    """The last result of a trial that has checkpointed but not finished, if any."""
    for d in trial_dirs(run_dir, stage):
        lines = (d / "result.json").read_text().splitlines() if (d / "result.json").is_file() else []
        if lines and json.loads(lines[-1])["training_iteration"] < epochs:
            return json.loads(lines[-1])
    return None


def wait_for(proc, predicate, timeout=600, what="condition"):
    """Poll `predicate` while the search `proc` runs; fail at once, with its output, if it exits."""
    t_end = time.time() + timeout
    while time.time() < t_end:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(
                f"the search exited ({proc.returncode}) before {what}:\n{proc.stdout.read()[-4000:]}"
            )
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
