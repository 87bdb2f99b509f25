"""RUN_DIR as a local folder or a URI: locations, progress, staging and sync."""

import json
import time

import pytest

from raysearch.errors import UserError
from raysearch.rundir import RunDir


def test_local_run_dir(tmp_path):
    run = RunDir(str(tmp_path / "runs"), "a")
    assert run.path == tmp_path / "runs" / "a" and run.location == str(run.path) and run.uri is None
    assert not run.exists()
    run.load_progress()["stages"]["x"] = 1
    run.save_progress()
    again = RunDir.at(str(tmp_path / "runs" / "a"))
    assert again.exists() and again.load_progress()["stages"] == {"x": 1}
    assert again.experiment("student-4") == f"{run.path}/student-4"


def test_uri_run_dir_stages_locally_and_syncs(tmp_path, monkeypatch):
    monkeypatch.setenv("RAYSEARCH_CACHE", str(tmp_path / "cache"))
    uri = f"file://{tmp_path / 'bucket'}"
    run = RunDir(uri, "b")
    assert run.location == f"{uri}/b" and run.path == tmp_path / "cache" / "runs" / "b"
    run.load_progress()
    (run.path / "best" / "student-4").mkdir(parents=True)
    (run.path / "best" / "student-4" / "x.txt").write_text("chosen")
    run.save_progress()  # syncs up
    assert (tmp_path / "bucket" / "b" / "progress.json").is_file()
    assert run.located(run.path / "best" / "student-4") == f"{uri}/b/best/student-4"
    monkeypatch.setenv("RAYSEARCH_CACHE", str(tmp_path / "other-machine"))
    elsewhere = RunDir.at(f"{uri}/b")
    assert elsewhere.exists() and not elsewhere.path.exists()
    elsewhere.sync("down")
    assert (elsewhere.path / "best" / "student-4" / "x.txt").read_text() == "chosen"


def test_unknown_scheme_is_one_line():
    with pytest.raises(UserError, match="expected a filesystem path or a URI"):
        RunDir("nosuch://bucket", "run")


def test_run_dir_stays_inside_storage(tmp_path):
    for bad in ("../escape", "/abs/path", "a/b", "..", ""):
        with pytest.raises(UserError, match="expected a plain name"):
            RunDir(str(tmp_path), bad)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="a file; expected a directory"):
        RunDir(str(tmp_path / "file"), "run")


def test_wall_clock_is_written_as_the_run_goes(tmp_path):
    run = RunDir(str(tmp_path), "a")
    run.load_progress()
    with run.wall_clock(every=0.05) as clock:
        first = json.loads((run.path / "wall.json").read_text())
        assert first["invocations"] == 1  # counted when it starts: a killed invocation is not lost
        time.sleep(0.3)
        beating = json.loads((run.path / "wall.json").read_text())
        assert beating["seconds"] >= 0.1  # written while it runs
    assert clock.seconds == pytest.approx(
        json.loads((run.path / "wall.json").read_text())["seconds"], abs=1e-3
    )
    with RunDir(str(tmp_path), "a").wall_clock() as second:
        pass
    assert second.invocations == 2 and second.seconds >= clock.seconds
    # a run written before wall.json kept its total in progress.json
    older = RunDir(str(tmp_path), "b")
    older.progress = {"wall": {"seconds": 60.0, "invocations": 3}}
    with older.wall_clock() as clock:
        pass
    assert clock.invocations == 4 and clock.seconds >= 60.0
