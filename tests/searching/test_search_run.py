"""End-to-end searches on tiny models: summary, object store, TensorBoard, crashes, resume.

Each search runs `python -m raysearch` in a subprocess with its own local Ray (RAY_TMPDIR in a
short temp dir, token auth off), two trials at a time on this 2-core machine.
"""

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import (
    REPO,
    finish,
    finished_trials,
    kill_matching,
    micro,
    mlflow_runs,
    running_trial,
    start_search,
    trial_dirs,
    wait_for,
)

pytestmark = pytest.mark.slow  # every test here starts Ray and a search


def _hparams(run_dir: Path) -> list[dict]:
    """HParams of every trial, read back from the TensorBoard event files."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.hparams import plugin_data_pb2

    found = []
    for path in run_dir.rglob("events.out.tfevents.*"):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.tag == "_hparams_/session_start_info":
                    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                    found.append(
                        {
                            k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
                            for k, v in data.session_start_info.hparams.items()
                        }
                    )
    return found


def _experiments(run_dir: Path) -> dict[Path, list[str]]:
    """Every HParams experiment in the run's event files: {its folder: the hparams it lists, in
    order}."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.hparams import plugin_data_pb2

    found = {}
    for path in run_dir.rglob("events.out.tfevents.*"):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.tag == "_hparams_/experiment":
                    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                    found[path.parent] = [h.name for h in data.experiment.hparam_infos]
    return found


def _study_states(run_dir: Path, arm: str) -> dict[str, int]:
    """How many trials of the arm's Optuna study on disk are in each state."""
    import optuna

    study = optuna.load_study(study_name=arm, storage=f"sqlite:///{run_dir / 'optuna.db'}")
    ids = [t.user_attrs["tune_trial_id"] for t in study.trials]
    assert len(ids) == len(set(ids))  # one Optuna trial per Tune trial
    return {s: sum(t.state.name == s for t in study.trials) for s in ("COMPLETE", "PRUNED", "FAIL")}


def _tune_states(arm_summary: dict) -> dict[str, int]:
    return {
        "COMPLETE": arm_summary["finished"],
        "PRUNED": arm_summary["stopped_early"],
        "FAIL": arm_summary["errored"],
    }


def _scalars(run_dir: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    tags = set()
    for path in run_dir.rglob("events.out.tfevents.*"):
        for event in EventFileLoader(str(path)).Load():
            tags.update(v.tag for v in event.summary.value)
    return tags


def _mlflow_runs_by_name(uri: str) -> dict[str, object]:
    """The MLflow runs of the experiment `run`, by name (the trial's folder under RUN_DIR/trials)."""
    runs = mlflow_runs(uri)
    named = {r.info.run_name: r for r in runs}
    assert len(named) == len(runs)
    return named


def _cache_computed(run_dir: Path, arm: str) -> list[bool]:
    """Whether each of the arm's trials computed the teacher's cached embeddings itself (sorted)."""
    first = [(d / "result.json").read_text().splitlines()[0] for d in trial_dirs(run_dir, arm)]
    return sorted(json.loads(line)["teacher_cache_computed"] for line in first)


def _reported_trials(run_dir: Path) -> dict[str, int]:
    """Every trial folder that holds results: {its name: epochs reported}."""
    return {
        d.name: len((d / "result.json").read_text().splitlines())
        for d in (run_dir / "trials").iterdir()
        if (d / "result.json").is_file() and (d / "result.json").stat().st_size
    }


def test_search_end_to_end_synthetic(ray_env, synthetic_ptbxl, tmp_path):
    env, space, storage = ray_env
    mlflow = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ("--leads", "4", "--trials", "3", "--mlflow", mlflow)
    out = finish(start_search(env, space, storage, synthetic_ptbxl, *args))
    run_dir = storage / "run"
    # what will happen, then raysearch's own progress lines: Tune's tables and hints only with --verbose
    assert f"RUN_DIR  {run_dir}" in out and ": SYNTHETIC, " in out
    assert "student-4 finished: 3 trials" in out and "baseline-4 finished: 3 trials" in out
    assert "Trial status" not in out and "Tuner.restore" not in out and "/tmp/ray" not in out
    assert len(out.splitlines()) < 60, out
    summary = json.loads((run_dir / "summary.json").read_text())
    md = (run_dir / "summary.md").read_text()
    assert md.startswith("# raysearch summary: run (SYNTHETIC data)") and summary["synthetic"] is True
    assert "0.9227" not in md  # no paper figure beside synthetic scores
    for arm in ("student", "baseline"):
        r = summary["leads"]["4"][arm]
        assert (
            r["trials"] == 3 and r["finished"] + r["stopped_early"] + r["errored"] == 3 and r["errored"] == 0
        )
        assert 0.5 < r["val_macro_auc"] <= 1 and len(r["test_macro_auc_ci"]) == 2
        assert (Path(r["best_dir"]) / "predictions_test.npz").is_file()
    for arm in ("student", "baseline"):  # every arm's study on disk, as Tune saw its trials
        assert _study_states(run_dir, f"{arm}-4") == _tune_states(summary["leads"]["4"][arm])
    # one figure everywhere: the chosen trial's last epoch, in the progress line, the summary and
    # the Optuna study (whose pruned trials end with the epoch they stopped at)
    import optuna

    for arm in ("student", "baseline"):
        val = summary["leads"]["4"][arm]["val_macro_auc"]
        assert f"{arm}-4 finished: 3 trials" in out and f"best val AUC {val:.4f}" in out
        study = optuna.load_study(study_name=f"{arm}-4", storage=f"sqlite:///{run_dir / 'optuna.db'}")
        assert abs(study.best_value - val) < 1e-6
        for trial in study.trials:
            if trial.state.name == "PRUNED":
                assert trial.intermediate_values and max(trial.intermediate_values) >= 1
    assert set(summary["leads"]["4"]["student"]["best_config"]) == {"alpha", "sim", "embedding_size", "lr"}
    assert set(summary["leads"]["4"]["baseline"]["best_config"]) == {"embedding_size", "lr"}
    assert (run_dir / "teachers" / "16" / "model.pt").is_file()

    # the teacher went into the object store once: the student stage created far fewer bytes than
    # one teacher per trial would need (Ray's own accounting)
    teacher_bytes = (run_dir / "teachers" / "16" / "model.pt").stat().st_size
    stats = summary["object_store"]
    created = (
        stats["after_students"]["cumulative_created_bytes"]
        - stats["after_teachers"]["cumulative_created_bytes"]
    )
    assert stats["after_teachers"]["bytes_used"] > teacher_bytes
    assert created < teacher_bytes, (created, teacher_bytes)

    # one HParams experiment, at RUN_DIR's top, listing every arm's parameters (TensorBoard shows the
    # first experiment it finds: no trial writes its own)
    experiments = _experiments(run_dir)
    assert list(experiments) == [run_dir] and experiments[run_dir] == [
        "alpha",
        "sim",
        "embedding_size",
        "lr",
        "arm",
        "leads",
        "pseudo",
        "stage",
    ]  # fmt: skip  (the searched ones first: TensorBoard shows the first ones ticked)
    hparams = _hparams(run_dir)
    students = [h for h in hparams if h.get("stage") == "student"]
    assert len(students) == 3
    assert all({"alpha", "sim", "embedding_size", "lr", "leads", "pseudo"} <= set(h) for h in students)
    assert all(h["pseudo"] is True and h["leads"] == "4" for h in students)
    assert any(h.get("pseudo") is False for h in hparams)
    tags = _scalars(run_dir)
    for tag in ("train_loss", "sim_loss", "val_macro_auc", "val_auc_MI"):
        assert tag in tags, tag  # named as the HParams experiment's metrics are, no ray/tune/ prefix
    assert not any(t.startswith("ray/") for t in tags)

    # --mlflow: one MLflow run per trial (the teachers' too), named like its folder, each epoch's
    # validation macro-AUC at its step, the searched parameters as the run's parameters
    from mlflow import MlflowClient

    runs, reported = _mlflow_runs_by_name(mlflow), _reported_trials(run_dir)
    assert set(runs) == set(reported) and sum(n.startswith("student-4-") for n in runs) == 3
    for name, run in runs.items():
        assert run.info.status == "FINISHED" and run.data.tags["arm"] == name.rsplit("-", 1)[0]
        history = MlflowClient(mlflow).get_metric_history(run.info.run_id, "val_macro_auc")
        assert [m.step for m in history] == list(range(1, reported[name] + 1))
        if run.data.tags["stage"] == "student":
            assert {"alpha", "sim", "embedding_size", "lr", "leads", "pseudo"} <= set(run.data.params)


def test_search_on_real_subset_with_a_given_teacher_and_its_cached_embeddings(ray_env, real_ptbxl):
    env, space, storage = ray_env
    space.write_text(
        micro().replace("constants: {arch: resnet1d,", "constants: {teacher_cache: 5, arch: resnet1d,")
    )
    teacher = storage.parent / "teacher"
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "raysearch",
            "train",
            "--data",
            str(real_ptbxl),
            "--leads",
            "12",
            "--out",
            str(teacher),
            "--epochs",
            "1",
            "--width",
            "4",
            "--depth",
            "3",
            "--embedding-size",
            "24",
            "--n-boot",
            "20",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    out = finish(
        start_search(
            env,
            space,
            storage,
            real_ptbxl,
            "--leads",
            "2",
            "--trials",
            "2",
            "--no-baseline",
            "--teacher",
            str(teacher),
        )
    )
    assert "students see the teacher through its embeddings cached at 5 crop positions" in out, out
    assert _cache_computed(storage / "run", "student-2") == [False, True]  # once, by one student
    summary = json.loads((storage / "run" / "summary.json").read_text())
    best = json.loads((Path(summary["leads"]["2"]["student"]["best_dir"]) / "config.json").read_text())
    assert best["config"]["teacher_cache"] == 5
    r = summary["leads"]["2"]["student"]
    assert list(summary["leads"]["2"]) == ["student"] and r["trials"] == 2
    assert r["best_config"]["embedding_size"] == 24  # the given teacher's size, no teacher stage
    assert summary["teachers"] == {
        "24": {"given": str(teacher), "config": summary["teachers"]["24"]["config"]}
    }
    assert not (storage / "run" / "teacher").exists()
    assert summary["records"] < 400


def test_killed_trial_is_retried_from_its_checkpoint(ray_env, synthetic_ptbxl):
    env, space, storage = ray_env
    space.write_text(micro(epochs=20, grace=20))
    proc = start_search(
        env,
        space,
        storage,
        synthetic_ptbxl,
        "--leads",
        "3",
        "--trials",
        "2",
        "--no-baseline",
        "--max-concurrent",
        "1",
    )
    run_dir = storage / "run"
    wait_for(proc, lambda: running_trial(run_dir, "student-3", 20) is not None, what="a student mid-training")
    assert kill_matching("ray::ImplicitFunc") >= 1  # SIGKILL the running trial's worker
    out = finish(proc)
    summary = json.loads((run_dir / "summary.json").read_text())
    r = summary["leads"]["3"]["student"]
    assert r["trials"] == 2 and r["errored"] == 0 and r["restarted"] >= 1, out[-3000:]


def test_killed_driver_resumes_without_losing_finished_trials(ray_env, synthetic_ptbxl, tmp_path):
    env, space, storage = ray_env
    # every arm in one experiment (teacher, student-4, baseline-4): killed mid-experiment
    mlflow = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = ("--leads", "4", "--trials", "2", "--max-concurrent", "1", "--mlflow", mlflow)
    space.write_text(micro(epochs=20, grace=20))
    proc = start_search(env, space, storage, synthetic_ptbxl, *args)
    run_dir = storage / "run"
    wait_for(
        proc, lambda: len(finished_trials(run_dir, "student-4", 20)) >= 1, what="a finished student trial"
    )
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started
    proc.wait()
    kill_matching(env["RAY_TMPDIR"])
    finished_before = {d.name: (d / "result.json").read_text() for d in finished_trials(run_dir, "student-4")}
    assert not (run_dir / "summary.json").exists()
    killed = json.loads((run_dir / "wall.json").read_text())  # written as the run went
    assert killed["invocations"] == 1 and killed["seconds"] > 0
    # the run is moved before it is resumed: it must go on in its new place, and only there
    old_run_dir, storage = run_dir, tmp_path / "moved"
    storage.mkdir()
    run_dir = storage / "run"
    shutil.move(old_run_dir, run_dir)

    # a --resume that would search something else is refused before Ray starts, naming it
    for extra, message in (
        (("--trials", "5"), "--trials 5 (the run's: 2)"),
        (("--seed", "3"), "--seed 3 (the run's: 0)"),
        (("--mlflow", "sqlite:///elsewhere.db"), f"--mlflow sqlite:///elsewhere.db (the run's: {mlflow}"),
    ):
        refused = start_search(env, space, storage, synthetic_ptbxl, *args, *extra, "--resume")  # last wins
        out, _ = refused.communicate(timeout=300)
        assert refused.returncode == 2 and message in out and "would change what it searched" in out, out
        assert "Traceback" not in out and "--resume" in out.splitlines()[-1]
    original = space.read_text()
    space.write_text(original.replace("lr: 5.0e-3", "lr: 4.0e-3"))
    refused = start_search(env, space, storage, synthetic_ptbxl, *args, "--resume")
    out, _ = refused.communicate(timeout=300)
    assert refused.returncode == 2 and "has changed" in out and str(space) in out, out
    space.write_text(original)

    out = finish(start_search(env, space, storage, synthetic_ptbxl, *args, "--resume"))
    assert f"the run was at {old_run_dir}: new trials go to {run_dir}" in out
    assert not old_run_dir.exists()  # nothing was written to where the run was
    summary = json.loads((run_dir / "summary.json").read_text())
    for arm in ("student", "baseline"):  # each arm exactly its budget; each study as Tune saw it
        r = summary["leads"]["4"][arm]
        assert r["trials"] == 2 and r["errored"] == 0
        assert _study_states(run_dir, f"{arm}-4") == _tune_states(r)  # no trial twice, none orphaned
    assert summary["invocations"] == 2  # the killed invocation counted (refused ones never started)
    assert summary["wall_seconds"] >= killed["seconds"] + summary["wall_seconds_this_invocation"] - 1e-3
    # (a trial created just before the kill but not yet in Tune's snapshot leaves an empty folder;
    # the restored searcher suggests a new trial in its place)
    after = {
        d.name: (d / "result.json").read_text()
        for d in trial_dirs(run_dir, "student-4")
        if (d / "result.json").is_file()
    }
    assert len(after) == 2
    for name, text in finished_before.items():
        assert after[name] == text  # finished trials were kept, not rerun
    # MLflow: the trials the kill cut short went on logging into their own runs, none twice
    runs, reported = _mlflow_runs_by_name(mlflow), _reported_trials(run_dir)
    assert set(reported) <= set(runs) and len(set(runs) - set(reported)) <= 1  # (the empty folder's)
    assert all(runs[name].info.status == "FINISHED" for name in reported)
    # a second --resume of a finished run re-trains nothing and rewrites the same summary
    assert summary["teachers"] == json.loads((run_dir / "summary.json").read_text())["teachers"]


def test_ctrl_c_reports_interruption_and_resumes(ray_env, synthetic_ptbxl):
    env, space, storage = ray_env
    space.write_text(micro(epochs=20, grace=20))
    args = ("--leads", "6", "--trials", "3", "--no-baseline", "--max-concurrent", "1")
    proc = start_search(env, space, storage, synthetic_ptbxl, *args)
    run_dir = storage / "run"
    # the teacher stage's only trial: every trial of the run exists, so Tune's statuses alone (it
    # marks stopped trials TERMINATED) could not tell an interruption from an end
    wait_for(proc, lambda: running_trial(run_dir, "teacher", 20) is not None, what="the teacher mid-training")
    proc.send_signal(signal.SIGINT)  # Ctrl-C: Tune saves its state and returns
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 2 and "interrupted during teacher" in out and "--resume" in out
    assert "Traceback" not in out and not (run_dir / "summary.json").exists()
    # the message names the exact command that continues the run: run it as printed
    command = shlex.split(re.search(r"run `(python -m raysearch [^`]*)` to continue", out).group(1))
    assert command[-1] == "--resume" and "--name" in command and "--storage" in command
    resumed = subprocess.run(
        [sys.executable, *command[1:]], env=env, cwd=REPO, capture_output=True, text=True, timeout=900
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    r = summary["leads"]["6"]["student"]
    assert r["trials"] == 3 and r["errored"] == 0
    # the search's wall time counts the interrupted invocation too
    assert summary["invocations"] == 2
    assert summary["wall_seconds"] > summary["wall_seconds_this_invocation"] > 0
    assert "over 2 invocation(s)" in (run_dir / "summary.md").read_text()


def test_uri_storage_and_resume_from_it(ray_env, synthetic_ptbxl, tmp_path):
    env, space, _ = ray_env
    uri = f"file://{tmp_path / 'bucket'}"  # a URI as s3:// or gs:// would be, served by pyarrow
    env = {**env, "RAYSEARCH_CACHE": str(tmp_path / "staging")}
    args = ("--leads", "2", "--trials", "2", "--no-baseline")
    out = finish(start_search(env, space, uri, synthetic_ptbxl, *args))
    assert f"RUN_DIR {uri}/run" in out
    remote = tmp_path / "bucket" / "run"
    summary = json.loads((remote / "summary.json").read_text())
    assert summary["leads"]["2"]["student"]["trials"] == 2 and (remote / "teachers").is_dir()
    assert any((remote / "trials").glob("student-2-*/result.json"))  # Tune wrote there too
    shutil.rmtree(tmp_path / "staging")  # a new machine: only the URI is left
    out = finish(start_search(env, space, uri, synthetic_ptbxl, *args, "--resume"))
    assert json.loads((remote / "summary.json").read_text())["leads"] == summary["leads"]


def test_the_same_seed_chooses_the_same_configurations(ray_env, synthetic_ptbxl):
    """Every stage's sampling is seeded by --seed: one trial at a time, two searches agree."""
    env, space, storage = ray_env
    args = ("--leads", "4", "--trials", "3", "--no-baseline", "--max-concurrent", "1", "--seed", "7")
    chosen = []
    for name in ("first", "second"):
        finish(start_search(env, space, storage, synthetic_ptbxl, *args, name=name))
        summary = json.loads((storage / name / "summary.json").read_text())
        student = summary["leads"]["4"]["student"]
        teachers = {size: t["config"] for size, t in summary["teachers"].items()}
        chosen.append((teachers, student["best_config"], student["val_macro_auc"]))
    assert chosen[0] == chosen[1]


def test_a_teacher_stage_with_cached_embeddings_and_baselines_finishes(ray_env, real_ptbxl):
    """The teacher stage, cached teacher embeddings and the baseline arm on two trial slots: the
    students' cache may not wait for slots that finished trials' cached actors hold."""
    env, space, storage = ray_env
    space.write_text(
        micro().replace("constants: {arch: resnet1d,", "constants: {teacher_cache: 5, arch: resnet1d,")
    )
    proc = start_search(env, space, storage, real_ptbxl, "--leads", "2", "--trials", "2")
    out = finish(proc, timeout=600)
    summary = json.loads((storage / "run" / "summary.json").read_text())
    assert [summary["leads"]["2"][arm]["finished"] for arm in ("student", "baseline")] == [2, 2], out
    # one student computed the teacher's embeddings; the other read them from the cluster's shared objects
    assert _cache_computed(storage / "run", "student-2") == [False, True]


def test_a_full_disk_is_one_line_and_the_run_resumes_after_space_is_freed(ray_env, synthetic_ptbxl, tmp_path):
    env, space, _ = ray_env
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(disk)]).returncode:
        pytest.skip("mounting a small tmpfs as --storage needs root")
    try:
        args = ("--leads", "2", "--trials", "2", "--no-baseline")
        proc = start_search(env, space, disk, synthetic_ptbxl, *args)
        out, _ = proc.communicate(timeout=600)
        errors = [line for line in out.splitlines() if line.startswith("raysearch: error:")]
        assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in out, out[-3000:]
        assert "the disk is full" in errors[0] and errors[0].endswith("--resume`"), errors[0]
        subprocess.run(["mount", "-o", "remount,size=50m", str(disk)], check=True)
        finish(start_search(env, space, disk, synthetic_ptbxl, *args, "--resume"))
        summary = json.loads((disk / "run" / "summary.json").read_text())
        assert summary["leads"]["2"]["student"]["trials"] == 2 and summary["invocations"] == 2
        assert _study_states(disk / "run", "student-2") == _tune_states(summary["leads"]["2"]["student"])
        (teacher,) = trial_dirs(disk / "run", "teacher")
        assert len((teacher / "result.json").read_text().splitlines()) == 2  # trained once, not again
    finally:
        subprocess.run(["umount", "-l", str(disk)])  # lazily: a Ray process may still hold it


def test_two_searches_into_one_run_dir_the_second_is_refused(ray_env, synthetic_ptbxl):
    env, space, storage = ray_env
    args = ("--leads", "2", "--trials", "2", "--no-baseline")
    procs = [start_search(env, space, storage, synthetic_ptbxl, *args) for _ in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    refused = outs[[p.returncode for p in procs].index(2)]
    assert "in use by another raysearch process" in refused and "Traceback" not in refused, refused
    summary = json.loads((storage / "run" / "summary.json").read_text())
    assert (
        summary["leads"]["2"]["student"]["trials"] == 2 and len(trial_dirs(storage / "run", "student-2")) == 2
    )


def test_a_search_writes_nothing_into_the_home_folder(ray_env, synthetic_ptbxl, tmp_path):
    env, space, storage = ray_env
    home = tmp_path / "home"
    home.mkdir()
    env = {**env, "HOME": str(home)}
    finish(
        start_search(env, space, storage, synthetic_ptbxl, "--leads", "2", "--trials", "1", "--no-baseline")
    )
    assert sorted(p.relative_to(home).as_posix() for p in home.rglob("*")) == []
    assert not any(Path(env["RAY_TMPDIR"]).iterdir())  # the local Ray's folder removed at the end


def test_finalists_choose_by_seed_means_resume_after_a_kill_and_serve_the_report(ray_env, synthetic_ptbxl):
    from raysearch.searching.finalists import finalist_seeds

    env, space, storage = ray_env
    space.write_text(micro(epochs=6, grace=6))  # no trial stopped early: each may be a finalist
    args = ("--leads", "4", "--trials", "3", "--no-baseline", "--max-concurrent", "1")
    args += ("--finalists", "2", "--finalist-seeds", "2")
    proc = start_search(env, space, storage, synthetic_ptbxl, *args)
    run_dir = storage / "run"
    wait_for(
        proc,
        lambda: len(finished_trials(run_dir, "student-4-finalists", 6)) >= 1,
        what="a finished finalist trial",
    )
    os.killpg(proc.pid, signal.SIGKILL)  # during the finalists: the driver and everything it started
    proc.wait()
    kill_matching(env["RAY_TMPDIR"])
    done_before = {
        d.name: (d / "result.json").read_text() for d in finished_trials(run_dir, "student-4-finalists", 6)
    }
    assert len(done_before) < 4 and not (run_dir / "summary.json").exists()

    refused = start_search(env, space, storage, synthetic_ptbxl, *args, "--finalists", "1", "--resume")
    out, _ = refused.communicate(timeout=300)
    assert refused.returncode == 2 and "--finalists 1 (the run's: 2)" in out, out

    finish(start_search(env, space, storage, synthetic_ptbxl, *args, "--resume"))
    after = {
        d.name: (d / "result.json").read_text()
        for d in trial_dirs(run_dir, "student-4-finalists")
        if (d / "result.json").is_file() and (d / "result.json").stat().st_size
    }
    for name, text in done_before.items():
        assert after[name] == text  # finished finalists were kept, not rerun
    retrained = [json.loads(text.splitlines()[-1])["config"] for text in after.values()]
    pairs = {(c["finalist_of"], c["seed"]) for c in retrained}
    assert len(retrained) == len(pairs) == 4  # two configurations x two seeds, none twice
    seeds = finalist_seeds(0, 2)
    assert {seed for _, seed in pairs} == set(seeds)

    summary = json.loads((run_dir / "summary.json").read_text())
    student = summary["leads"]["4"]["student"]
    f = student["finalists"]
    assert [row["seeds"] for row in f["table"]] == [[0, *seeds], [0, *seeds]]
    means = [row["mean"] for row in f["table"]]
    assert means == sorted(means, reverse=True) and student["best_config"] == f["table"][0]["config"]
    first_runs = sorted(json.loads(d.joinpath("result.json").read_text().splitlines()[-1])["val_macro_auc"]
                        for d in trial_dirs(run_dir, "student-4") if "finalists" not in d.name)  # fmt: skip
    assert student["search_winner"]["val_macro_auc"] == first_runs[-1]  # the one-run winner, kept beside
    assert f["noise_floor"] > 0 and isinstance(f["lead_beyond_noise"], bool)
    assert "## Finalists" in (run_dir / "summary.md").read_text()
    assert sorted(p.name for p in (run_dir / "best" / "student-4" / "seeds").iterdir()) == [
        f"seed{s}" for s in seeds
    ]

    # the report's first two seeds are the finalists': evaluated, not trained again
    report = subprocess.run(
        [sys.executable, "-m", "raysearch", "report", str(run_dir), "--seeds", "2", "--num-cpus", "2"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert report.returncode == 0, report.stdout[-3000:] + report.stderr[-3000:]
    said = report.stdout + report.stderr
    assert "2 run(s) of the same configuration and seed reused" in said
    assert "training 2 run(s)" in said  # the teacher's only
    for seed, score in zip(seeds, f["table"][0]["val_macro_auc"][1:], strict=True):
        metrics = json.loads(
            (run_dir / "report" / "runs" / f"student-4-seed{seed}" / "metrics.json").read_text()
        )
        assert metrics["val_macro_auc"] == score
    # what a search without finalists would have chosen: the best first run, reported beside
    report = subprocess.run(
        [sys.executable, "-m", "raysearch", "report", str(run_dir), "--seeds", "2", "--num-cpus", "2",
         "--chosen-by", "first-run"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert report.returncode == 0, report.stdout[-3000:] + report.stderr[-3000:]
    frozen = json.loads((run_dir / "report-first-run" / "configs.json").read_text())
    assert frozen["chosen_by"] == "first-run"
    winner = frozen["configs"]["student-4"]
    assert {k: winner[k] for k in student["search_winner"]["config"]} == student["search_winner"]["config"]
    assert (run_dir / "report-first-run.md").is_file() and (run_dir / "report.md").is_file()
    same = student["search_winner"]["config"] == student["best_config"]
    reused = 4 if same else 2  # the teacher's runs, and the student's when it is the same choice
    assert f"{reused} run(s) of the same configuration and seed reused" in report.stdout + report.stderr
    # (with --no-baseline the table has no 4-lead row: the winner's curse table is tested in
    # tests/reporting/test_selection.py)
