"""RUN_DIR as a local folder or a URI: locations, progress, staging and sync."""

import json
import shutil
import time

import pytest

from raysearch.errors import UserError
from raysearch.searching.rundir import RunDir


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
    assert run.location == f"{uri}/b" and run.path.parent == tmp_path / "cache" / "runs"
    assert run.path.name.endswith("-b")
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


def test_a_uri_run_stages_apart_from_another_uris_run_of_the_same_name(tmp_path, monkeypatch):
    """Staging is keyed by the whole location, and a staging folder only ever holds what is at the
    URI now: another run's progress.json is never read as this run's."""
    monkeypatch.setenv("RAYSEARCH_CACHE", str(tmp_path / "cache"))
    first = RunDir(f"file://{tmp_path / 'one'}", "run")
    first.load_progress()["stages"]["student-4"] = {"val_macro_auc": 0.9}
    first.save_progress()
    second = RunDir(f"file://{tmp_path / 'two'}", "run")
    assert second.path != first.path and not second.exists()
    stale = RunDir(f"file://{tmp_path / 'one'}", "run")
    shutil.rmtree(tmp_path / "one")  # the URI's run is gone; its staging folder is still here
    (stale.path / "leftover.json").write_text("{}")
    stale.sync("down")
    assert not stale.progress_path.exists() and not (stale.path / "leftover.json").exists()


def test_a_run_dir_has_one_owner_and_a_failed_fresh_run_leaves_nothing(tmp_path):
    run = RunDir(str(tmp_path), "a")
    with run.owned(fresh=True):
        with pytest.raises(UserError, match=r"in use by another raysearch process \(pid \d+\)"):
            with RunDir(str(tmp_path), "a").owned(fresh=True):
                pass
        assert run.path.is_dir()  # the second owner's refusal removed nothing
    with pytest.raises(UserError, match="no GPU"):
        with run.owned(fresh=True):
            run.save_progress()
            raise UserError("--gpus-per-trial 1: this machine has no GPU")
    assert not run.path.exists()  # nothing trained: gone, so the corrected command is not refused
    with pytest.raises(KeyboardInterrupt):
        with run.owned(fresh=True):
            run.keep = True  # trials ran: an interrupted run is resumed, never removed
            run.save_progress()
            raise KeyboardInterrupt
    assert run.progress_path.is_file()
    with pytest.raises(UserError):
        with RunDir(str(tmp_path), "a").owned(fresh=True):  # another run's folder: never removed
            raise UserError("exists")
    assert run.progress_path.is_file() and not (run.path / ".raysearch.lock").exists()


@pytest.mark.slow  # pyarrow's S3 client retries for seconds
def test_an_unreachable_store_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("RAYSEARCH_CACHE", str(tmp_path / "cache"))
    for name, value in {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(UserError, match=r"s3://bucket/runs/x: cannot read there \(.*Could not connect"):
        RunDir("s3://bucket/runs", "x").exists()


def test_progress_damaged_is_one_line(tmp_path):
    run = RunDir(str(tmp_path), "a")
    run.load_progress()
    run.save_progress()
    run.progress_path.write_text(run.progress_path.read_text()[:5])
    with pytest.raises(UserError, match=r"progress.json: damaged \(.*\); expected the JSON raysearch wrote"):
        RunDir(str(tmp_path), "a").load_progress()
