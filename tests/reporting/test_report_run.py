"""`raysearch report` (table.py): frozen configurations, K seeds, the table's statistics and its files.

One micro search per data set (module-scoped: a real PTB-XL subset, and synthetic data) is
reported without seeds and with 2 seeds. The report runs in this process (cli.main) so that a spy on
PTBXL.split sees every read of the test fold by the driver; the trials (Ray workers) hold a copy
whose test fold is sealed, so a trial that read it would fail the report.
"""

import csv
import json
import os
import shutil
import tempfile

import numpy as np
import pytest
from conftest import finish, kill_matching, micro, run_main, start_search

from raysearch.cli import main
from raysearch.data.ptbxl import PTBXL
from raysearch.reporting import table
from raysearch.reporting.statistics import paired_bootstrap


@pytest.fixture(scope="module")
def ray_tmp():
    path = tempfile.mkdtemp(prefix="rr", dir="/tmp")
    yield path
    kill_matching(path)
    shutil.rmtree(path, ignore_errors=True)


def _searched(tmp_path_factory, ray_tmp, data) -> tuple:
    storage = tmp_path_factory.mktemp("runs")
    space = storage / "micro.yaml"
    space.write_text(micro(epochs=2))
    env = {**os.environ, "RAY_TMPDIR": ray_tmp, "RAY_AUTH_MODE": "disabled"}
    finish(start_search(env, space, storage, data, "--leads", "4", "--trials", "2"))
    return storage / "run", env


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, ray_tmp, real_ptbxl):
    return _searched(tmp_path_factory, ray_tmp, real_ptbxl)


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory, ray_tmp, synthetic_ptbxl):
    return _searched(tmp_path_factory, ray_tmp, synthetic_ptbxl)


def _report(monkeypatch, run_dir, env, *extra) -> list[str]:
    """report_main in this process, spying on every read of the test fold: each must come after
    report/configs.json (the frozen configurations) exists. Returns the reads' splits."""
    for k in ("RAY_TMPDIR", "RAY_AUTH_MODE"):
        monkeypatch.setenv(k, env[k])
    reads = []
    real_split = PTBXL.split

    def spy(self, name):
        if name == "test":
            assert (run_dir / "report" / "configs.json").is_file(), "test fold read before configs froze"
            reads.append(name)
        return real_split(self, name)

    monkeypatch.setattr(PTBXL, "split", spy)
    real_load = table._load

    def load_spy(runs, split):  # the operating points are fixed from validation before test is read
        if split == "test":
            assert (run_dir / "report" / "operating.json").is_file(), "test predictions read before fitting"
        return real_load(runs, split)

    monkeypatch.setattr(table, "_load", load_spy)
    assert main(["report", str(run_dir), "--num-cpus", "2", "--max-concurrent", "2", *extra]) == 0
    return reads


def _files(run_dir):
    report = json.loads((run_dir / "report.json").read_text())
    with open(run_dir / "report.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    md = (run_dir / "report.md").read_text()
    assert (run_dir / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return report, rows, md


@pytest.mark.slow
def test_single_seed_report_on_real_subset(monkeypatch, real_run):
    run_dir, env = real_run
    reads = _report(monkeypatch, run_dir, env)
    assert reads  # the teacher's test figures were read, after the freeze
    report, rows, md = _files(run_dir)
    assert [r["leads"] for r in report["rows"]] == ["12", "4"]
    # the operating point: fitted on validation (operating.json), figures on test, the F1 difference
    operating = json.loads((run_dir / "report" / "operating.json").read_text())
    assert (
        set(operating) == {"teacher-12", "student-4", "baseline-4"} and operating["student-4"]["rule"] == "f1"
    )
    student_point = report["rows"][1]["arms"]["student"]["operating"]["per_class"]["NORM"]
    assert student_point["threshold"] == operating["student-4"]["thresholds"][0]
    assert (
        student_point["sensitivity"][1] <= student_point["sensitivity"][0] <= student_point["sensitivity"][2]
    )
    assert "## Operating point (test; calibration and thresholds fitted on validation, rule f1)" in md
    assert "macro-F1 pseudo = True − False at their operating points" in md
    assert (run_dir / "report-calibration.png").read_bytes()[:4] == b"\x89PNG"
    assert [(r["leads"], r["arm"], r["pseudo"]) for r in rows] == [
        ("12", "teacher", ""),
        ("4", "student", "True"),
        ("4", "baseline", "False"),
    ]
    assert "single-seed" in md and "| 4 |" in md and "paper val" in md
    assert "SYNTHETIC" not in md and report["header"]["synthetic"] is False
    # what mattered, from the search's studies: a few trials per arm are too few to rank
    mattered = report["what_mattered"]
    assert set(mattered) == {"student-4", "baseline-4"}
    assert mattered["student-4"]["importance"] is None and "Too few finished trials" in md
    assert (run_dir / "report-mattered.png").read_bytes()[:4] == b"\x89PNG"
    # frozen = what the search chose on validation
    frozen = json.loads((run_dir / "report" / "configs.json").read_text())["configs"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert frozen["student-4"]["lr"] == summary["leads"]["4"]["student"]["best_config"]["lr"]
    # the search's own runs, their figures unchanged
    student = report["rows"][1]["arms"]["student"]
    assert student["seeds"] == 1 and student["test"]["std"] is None
    assert student["test"]["mean"] == pytest.approx(summary["leads"]["4"]["student"]["test_macro_auc"])
    gain = report["rows"][1]["gain"]
    assert gain["ci"][0] <= gain["gain"] <= gain["ci"][1]
    assert float(rows[1]["gain"]) == pytest.approx(gain["gain"])

    # the real predictions against themselves: a gain of exactly 0, p = 1
    p = np.load(run_dir / "best" / "student-4" / "predictions_test.npz")
    same = paired_bootstrap(p["y_true"], p["y_score"], p["y_score"].copy(), n_boot=200)
    assert same["gain"] == 0.0 and same["p_value"] == pytest.approx(1.0)


@pytest.mark.slow
def test_a_report_on_damaged_files(monkeypatch, capsys, tmp_path, real_run):
    run_dir, env = real_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("trials", "report*"))
    (copy / "optuna.db").write_bytes(b"not a database" * 100)  # the studies: the table stands without
    _report(monkeypatch, copy, env)
    md = (copy / "report.md").read_text()
    assert "## What mattered\n\nLeft out: " in md and "optuna.db: not a readable Optuna study database" in md
    assert "| 4 |" in md and not (copy / "report-mattered.png").exists()
    (copy / "best" / "student-4" / "predictions_test.npz").unlink()
    assert main(["report", str(copy), "--num-cpus", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("raysearch: error: ") and "predictions_test.npz: missing; expected" in err
    assert main(["report", str(copy), "--n-boot", "0"]) == 2
    assert "--n-boot 0: expected at least 1" in capsys.readouterr().err


@pytest.mark.slow
def test_seeds_report_trains_k_distinct_runs(monkeypatch, synthetic_run):
    run_dir, env = synthetic_run
    reads = _report(monkeypatch, run_dir, env, "--seeds", "2", "--n-boot", "200")
    assert reads
    report, rows, md = _files(run_dir)
    runs = run_dir / "report" / "runs"
    for name in ("teacher-12", "student-4", "baseline-4"):
        configs = [json.loads((runs / f"{name}-seed{s}" / "config.json").read_text()) for s in (1, 2)]
        assert [c["config"]["seed"] for c in configs] == [1, 2]
        scores = [np.load(runs / f"{name}-seed{s}" / "predictions_test.npz")["y_score"] for s in (1, 2)]
        assert not np.array_equal(*scores)  # two runs, not one counted twice
    student = report["rows"][1]["arms"]["student"]
    assert student["seeds"] == 2 and len(student["test"]["per_seed"]) == 2 and student["test"]["std"] > 0
    assert report["header"]["seeds"] == 2 and "2 seeds per configuration" in md
    # synthetic data is said to be so, and read as numbers only: no verdict, no paper beside it
    assert md.startswith(f"# raysearch report: {run_dir} (SYNTHETIC data)") and report["header"]["synthetic"]
    reading = md.split("## Reading")[1]
    assert "SYNTHETIC data generated by raysearch" in reading and "helped" not in reading
    assert "paper" not in reading.replace("not compared with the paper", "")
    assert all(r["paper_val"] == "" for r in rows)
    assert all(r["seeds"] == "2" for r in rows)
    assert float(rows[1]["seed_p_value"]) == report["rows"][1]["gain"]["seed_welch"]["p_value"]
    assert "Welch 95% CI" in md
    # the students distilled from the search's teacher, not from a retrained one
    student_cfg = json.loads((runs / "student-4-seed1" / "config.json").read_text())["config"]
    assert student_cfg["stage"] == "student" and student_cfg["embedding_size"] == 16

    # a rerun reuses the saved runs: nothing is trained again, the figures are the same
    before = (runs / "student-4-seed2" / "predictions_test.npz").stat().st_mtime_ns
    _report(monkeypatch, run_dir, env, "--seeds", "2", "--n-boot", "200")
    assert (runs / "student-4-seed2" / "predictions_test.npz").stat().st_mtime_ns == before
    assert json.loads((run_dir / "report.json").read_text())["rows"] == report["rows"]


@pytest.mark.slow
def test_report_on_a_uri_run_dir(monkeypatch, capsys, tmp_path, synthetic_run):
    """A search stored at a URI (s3://, gs://; here file:// served by pyarrow): the report stages
    what it needs, trains at the URI and syncs its outputs back; a new machine reuses them."""
    run_dir, env = synthetic_run
    remote = tmp_path / "bucket" / "run"
    remote.mkdir(parents=True)
    for rel in ("summary.json", "progress.json", "teachers", "best"):  # what the search synced up
        if (run_dir / rel).is_dir():
            shutil.copytree(run_dir / rel, remote / rel)
        else:
            shutil.copy(run_dir / rel, remote / rel)
    uri = f"file://{remote}"
    for k in ("RAY_TMPDIR", "RAY_AUTH_MODE"):
        monkeypatch.setenv(k, env[k])
    monkeypatch.setenv("RAYSEARCH_CACHE", str(tmp_path / "machine1"))
    argv = [uri, "--seeds", "1", "--n-boot", "100", "--num-cpus", "2", "--max-concurrent", "2"]
    assert main(["report", *argv]) == 0
    assert "report: training 3 run(s)" in capsys.readouterr().err
    for name in ("teacher-12", "student-4", "baseline-4"):
        assert (remote / "report" / "runs" / f"{name}-seed1" / "predictions_test.npz").is_file()
    assert any(remote.glob("report-*/*/result.json"))  # Tune wrote the runs' trials there
    report, rows, md = _files(remote)
    assert report["header"]["run_dir"] == uri and f"# raysearch report: {uri}" in md
    assert (remote / "report" / "configs.json").is_file() and rows[0]["seeds"] == "1"

    monkeypatch.setenv("RAYSEARCH_CACHE", str(tmp_path / "machine2"))  # only the URI is left
    assert main(["report", *argv]) == 0
    assert "report: training" not in capsys.readouterr().err  # the saved runs were reused
    assert json.loads((remote / "report.json").read_text())["rows"] == report["rows"]


def test_sealed_test_fold_cannot_be_read(synthetic_ptbxl):
    from dataclasses import replace

    from raysearch.data.ptbxl import load_ptbxl

    data = replace(load_ptbxl(synthetic_ptbxl), test_sealed=True)
    assert len(data.split("val")) > 0
    with pytest.raises(RuntimeError, match="test fold"):
        data.split("test")


def test_report_errors_are_one_line(tmp_path):
    r = run_main("report", str(tmp_path))
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "summary.json: missing" in r.stderr and "Traceback" not in r.stderr
    r = run_main("report", str(tmp_path), "--seeds", "0")
    assert r.returncode == 2 and "--seeds 0: expected at least 1" in r.stderr
    r = run_main("report", "nosuch://bucket/run", env={"RAYSEARCH_CACHE": str(tmp_path / "c")})
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "nosuch://bucket/run: " in r.stderr
    r = run_main("report", f"file://{tmp_path}/run", env={"RAYSEARCH_CACHE": str(tmp_path / "c")})
    assert r.returncode == 2 and f"file://{tmp_path}/run/summary.json: missing" in r.stderr


def test_table_from_saved_predictions(tmp_path):
    """build_report on hand-made predictions: per-seed mean/std, the seed ensemble, a missing arm."""
    from raysearch.reporting.markdown import markdown
    from raysearch.reporting.table import build_report

    rng = np.random.default_rng(0)
    y = (rng.random((300, 5)) < 0.3).astype(np.float32)
    runs = {}
    for name, noise in (("teacher-12", 0.5), ("student-4", 0.8), ("baseline-4", 1.0), ("student-2", 1.0)):
        runs[name] = []
        for seed in (1, 2):
            d = tmp_path / f"{name}-seed{seed}"
            d.mkdir()
            for split in ("val", "test"):
                score = y + noise * rng.normal(size=y.shape)
                np.savez(d / f"predictions_{split}.npz", ecg_id=np.arange(300), y_true=y, y_score=score)
            runs[name].append(d)
    # how the search measured its choices: the student by finalists, the baseline by one run
    chosen = {"val_macro_auc": [0.91, 0.90, 0.905], "mean": 0.905}
    winner = {"val_macro_auc": [0.92, 0.88, 0.89], "mean": 0.8967}  # the one-run winner, a finalist
    summary = {
        "leads": {
            "4": {
                "student": {"val_macro_auc": 0.91, "search_winner": {"val_macro_auc": 0.92},
                            "finalists": {"table": [chosen, winner]}},
                "baseline": {"val_macro_auc": 0.88, "search_winner": {"val_macro_auc": 0.88},
                             "finalists": None},
            },
            "2": {"student": {"val_macro_auc": 0.8}},
        }
    }  # fmt: skip
    frozen = {"configs": {name: {"stage": name.split("-")[0]} for name in runs}, "summary": summary}
    report = build_report(runs, frozen, n_boot=100)
    arms = report["rows"][1]["arms"]
    assert arms["student"]["selection"] == {
        "first_val": 0.91, "search_winner_val": 0.92, "finalist_mean": 0.905, "finalist_runs": 3
    }  # fmt: skip
    assert arms["baseline"]["selection"] == {
        "first_val": 0.88, "search_winner_val": 0.88, "finalist_mean": None, "finalist_runs": 0
    }  # fmt: skip
    assert "selection" not in report["rows"][0]["arms"]["teacher"]
    # a report of the one-run winners (--chosen-by first-run) describes the winner's runs
    assert table.selection_figures(summary, "4", "student", "first-run") == {
        "first_val": 0.92, "search_winner_val": 0.92, "finalist_mean": 0.8967, "finalist_runs": 3
    }  # fmt: skip
    assert [r["leads"] for r in report["rows"]] == ["12", "4"] and report["incomplete"] == ["2"]
    fig = report["rows"][1]["arms"]["student"]["test"]
    scores = [np.load(d / "predictions_test.npz")["y_score"] for d in runs["student-4"]]
    from raysearch.training.metrics import macro_auc

    assert fig["per_seed"] == [macro_auc(y, s) for s in scores]
    assert fig["mean"] == pytest.approx(np.mean(fig["per_seed"]))
    assert fig["std"] == pytest.approx(np.std(fig["per_seed"], ddof=1))
    assert fig["ensemble"] == macro_auc(y, (scores[0] + scores[1]) / 2)
    gain = report["rows"][1]["gain"]
    assert gain["gain"] > 0 and gain["ci"][0] <= gain["gain"] <= gain["ci"][1]  # less noise wins
    baseline = report["rows"][1]["arms"]["baseline"]["test"]["per_seed"]
    from scipy.stats import ttest_ind

    assert gain["seed_welch"]["p_value"] == ttest_ind(fig["per_seed"], baseline, equal_var=False).pvalue
    assert gain["seed_welch"]["diff"] == pytest.approx(fig["mean"] - np.mean(baseline))
    report["header"] = {
        "run_dir": "R", "seeds": 2, "data": "D", "records": 300, "space": "S", "trials": 1,
        "search_seed": 0, "budget": "B", "device": "cpu",
        "wall": {"search": "1", "report": "1", "runs_training": "1"},
    }  # fmt: skip
    md = markdown(report)
    assert "2 leads: left out" in md and "| 4 |" in md and "Welch 95% CI" in md
    curse = md[md.index("(the winner's curse)") :]
    val = arms["student"]["val"]["mean"]
    assert "| 4 | pseudo = True | 0.9100 (winner 0.9200) | 0.9050 (3) | " in curse
    assert f"| {0.91 - val:+.4f} | {val - arms['student']['test']['mean']:+.4f} |" in curse
    assert "| 4 | pseudo = False | 0.8800 | – | " in curse
    flattered = [0.91 - val, 0.88 - arms["baseline"]["val"]["mean"]]
    assert f"their first runs scored {np.mean(flattered):+.4f} on average" in md
    row4 = next(line for line in md.splitlines() if line.startswith("| 4 |"))
    assert row4.count("|") == 12  # 11 columns, the seeds' test among them
