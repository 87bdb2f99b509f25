"""Shared fixtures: a real PTB-XL subset (materialized from ../shared/ptbxl), a synthetic set.

CI's .ci/run materializes the real subset once and names it in RAYSEARCH_TEST_PTBXL; run
locally without it, the fixture materializes its own copy (about 3 s for 400 records).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "ptbxl"
SUBSET_RECORDS = 400


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Every test session converts into its own cache, never the user's ~/.cache/raysearch."""
    old = os.environ.get("RAYSEARCH_CACHE")
    os.environ["RAYSEARCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("RAYSEARCH_CACHE", None)
    else:
        os.environ["RAYSEARCH_CACHE"] = old


@pytest.fixture(scope="session")
def real_ptbxl(tmp_path_factory) -> Path:
    """A real PTB-XL 1.0.1 subset in PhysioNet's layout (the first records by ecg_id)."""
    given = os.environ.get("RAYSEARCH_TEST_PTBXL")
    if given:
        return Path(given)
    if not (SHARED / "materialize.py").is_file():
        pytest.fail(f"no real PTB-XL: set RAYSEARCH_TEST_PTBXL or provide {SHARED}")
    dest = tmp_path_factory.mktemp("ptbxl")
    subprocess.run(
        [sys.executable, str(SHARED / "materialize.py"), str(dest), "--limit", str(SUBSET_RECORDS)],
        check=True,
        capture_output=True,
    )
    return dest


@pytest.fixture(scope="session")
def synthetic_ptbxl(tmp_path_factory) -> Path:
    from raysearch.synth import write_synthetic

    return write_synthetic(tmp_path_factory.mktemp("synthetic"), records=500, seed=0)


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m raysearch ARGS` in a subprocess (exit codes and stderr as a user sees them)."""
    return subprocess.run(
        [sys.executable, "-m", "raysearch", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )
