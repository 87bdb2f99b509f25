"""Where data comes from: the default location, the missing-data message, synthetic on request."""

from conftest import run_main

from raysearch.data.dataset import DataOptions, default_data, open_dataset
from raysearch.errors import UserError


def test_default_location_and_environment(monkeypatch):
    monkeypatch.delenv("RAYSEARCH_DATA", raising=False)
    assert default_data() == "ptb-xl" == DataOptions().data
    monkeypatch.setenv("RAYSEARCH_DATA", "/data/ptb-xl")
    assert DataOptions().data == "/data/ptb-xl"


def test_missing_data_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        open_dataset(DataOptions())
    except UserError as e:
        message = str(e)
    assert "\n" not in message and message.startswith("ptb-xl: not a directory")
    assert "python -m raysearch data download ptb-xl" in message and "--data synthetic" in message
    # the bare command, as a new user types it in an empty folder: one line, no training
    r = run_main("--leads", "4", "--trials", "64", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and "raysearch data download" in r.stderr, r.stderr
    assert not (tmp_path / "runs").exists()  # nothing was started


def test_synthetic_only_when_named(synthetic_ptbxl, real_ptbxl):
    assert open_dataset(DataOptions(str(synthetic_ptbxl)), progress=False).synthetic
    assert not open_dataset(DataOptions(str(real_ptbxl)), progress=False).synthetic
