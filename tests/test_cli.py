"""The command line as a user meets it: exit codes, one-line errors, JSON output."""

import json
import shutil
import subprocess

import pytest
import torch
from conftest import run_main

from raysearch.data.ptbxl import load_ptbxl, summary


def _one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("raysearch: error:")]
    assert len(lines) == 1, result.stderr
    for f in fragments:
        assert f in result.stderr, result.stderr


def test_data_info_json(real_ptbxl):
    result = run_main("data", "info", str(real_ptbxl), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info == summary(load_ptbxl(real_ptbxl, progress=False))
    assert set(info["folds"]) == {str(f) for f in range(1, 11)}
    assert list(info["classes"]) == ["NORM", "MI", "STTC", "CD", "HYP"]
    assert info["sampling_rate"] == 100 and info["records"] + info["dropped"] == 400


def test_data_info_human(real_ptbxl):
    result = run_main("data", "info", str(real_ptbxl))
    assert result.returncode == 0 and "records with a diagnostic superclass" in result.stdout


def test_synth_command_and_synthetic_data_option(tmp_path):
    result = run_main("data", "synth", str(tmp_path / "syn"), "--records", "40")
    assert result.returncode == 0, result.stderr
    info = json.loads(run_main("data", "info", str(tmp_path / "syn"), "--json").stdout)
    assert info["records"] + info["dropped"] == 40


def test_bad_inputs_are_one_line_errors(real_ptbxl, tmp_path):
    _one_line_error(run_main("data", "info", str(tmp_path)), "ptbxl_database.csv: missing")
    _one_line_error(run_main("data", "info", str(tmp_path / "nope")), "not a directory")
    root = tmp_path / "broken"
    shutil.copytree(real_ptbxl, root)
    (root / "ptbxl_database.csv").write_text(
        (root / "ptbxl_database.csv").read_text().replace("scp_codes", "codes")
    )
    _one_line_error(run_main("data", "info", str(root)), "missing column(s) scp_codes")
    _one_line_error(
        run_main(
            "train", "--data", str(real_ptbxl), "--leads", "I,V9", "--baseline", "--out", str(tmp_path / "r")
        ),
        "unknown lead V9",
    )
    if not torch.cuda.is_available():
        _one_line_error(
            run_main(
                "train",
                "--data",
                str(real_ptbxl),
                "--baseline",
                "--graphs",
                "on",
                "--out",
                str(tmp_path / "g"),
            ),
            "graphs on: CUDA graphs need a CUDA device, this stage runs on cpu",
        )


def test_bad_records_exit_nonzero_and_skip(real_ptbxl, tmp_path):
    root = tmp_path / "bad"
    shutil.copytree(real_ptbxl, root)
    dat = root / "records100" / "00000" / "00001_lr.dat"
    dat.write_bytes(dat.read_bytes()[:100])
    result = run_main("data", "info", str(root))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "00001_lr.dat: 100 bytes, expected 24000 (truncated)" in result.stderr
    result = run_main("data", "info", str(root), "--skip-bad-records")
    assert result.returncode == 0 and "1 bad skipped" in result.stdout


def _actions(parser):
    """Every option of a parser and of its subcommands."""
    import argparse

    for action in parser._actions:  # argparse has no public walk over its options
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _actions(sub)
        elif not isinstance(action, argparse._HelpAction):
            yield parser.prog, action


def test_every_option_says_what_it_does_and_help_shows_defaults():
    from raysearch.cli import model, search, stage

    parsers = [
        search.search_parser(),
        stage.data_parser(),
        stage.train_parser(),
        search.report_parser(),
        model.export_parser(),
        model.predict_parser(),
    ]
    seen = 0
    for parser in parsers:
        for prog, action in _actions(parser):
            seen += 1
            assert action.help and len(action.help) > 8, (prog, action.dest)
    assert seen > 60
    text = run_main("--help").stdout
    assert "(default: 16)" in text and "(default: ptb-xl)" in text and "--verbose" in text
    assert "(default: search-<leads>-<time>)" in text and "(default: None)" not in text


HELP_PROBE = """
import contextlib, io, sys
from raysearch.cli import main
commands = [[], ["data", "download"], ["data", "synth"], ["data", "info"], ["train"], ["report"]]
for command in commands + [["export"], ["predict"]]:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        try:
            main(command + ["--help"])
        except SystemExit:
            pass
    assert out.getvalue().startswith("usage:") and "--help" in out.getvalue(), command
    assert out.getvalue().count("(default") < 60, command
stack = {"torch", "ray", "numpy", "pandas", "optuna", "sklearn"}
heavy = sorted({m.split(".")[0] for m in sys.modules} & stack)
print(" ".join(heavy) or "light")
"""


def test_help_answers_without_the_heavy_stack():
    """--help of every command imports neither torch nor Ray (it answers in a fraction of a second;
    measured in BENCHMARKS.md), and no option shows its default twice."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", HELP_PROBE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "light"
    for line in run_main("train", "--help").stdout.split("  -")[1:]:
        assert line.count("(default") <= 1, line


def _main_error(capsys, *args: str) -> str:
    """`raysearch ARGS` in this process: exit status 2 and one line, no traceback; that line."""
    from raysearch.cli import main

    assert main(list(args)) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("raysearch: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


BAD_SEARCH_OPTIONS = [
    (("--gpus-per-trial", "-1"), "--gpus-per-trial -1: expected a number of GPUs >= 0"),
    (("--cpus-per-trial", "0"), "--cpus-per-trial 0: expected a number of CPUs > 0"),
    (("--cpus-per-trial", "-1"), "--cpus-per-trial -1: expected a number of CPUs > 0"),
    (("--max-concurrent", "-1"), "--max-concurrent -1: expected a whole number >= 0"),
    (("--seed", "-1"), "--seed -1: expected 0 to 2^32 - 1"),
    (("--seed", str(2**32)), "--seed 4294967296: expected 0 to 2^32 - 1"),
    (("--name", "x" * 300), "300 characters; expected at most 100"),
    (("--finalists", "-1"), "--finalists -1: expected 0 (off) or more configurations per arm"),
    (("--finalist-seeds", "0"), "--finalist-seeds 0: expected at least 1 further seed"),
    (("--address", "127.0.0.1:1"), "--address 127.0.0.1:1: nothing answers there (Connection refused)"),
]


@pytest.mark.parametrize("option,message", BAD_SEARCH_OPTIONS)
def test_bad_search_options_are_one_line_and_leave_nothing(capsys, tmp_path, real_ptbxl, option, message):
    line = _main_error(capsys, "--data", str(real_ptbxl), "--storage", str(tmp_path / "runs"), *option)
    assert message in line
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_temp_folder_too_long_for_rays_sockets(capsys, monkeypatch, tmp_path, real_ptbxl):
    monkeypatch.setenv("RAY_TMPDIR", "/tmp/" + "x" * 40)
    line = _main_error(capsys, "--data", str(real_ptbxl), "--storage", str(tmp_path / "runs"))
    assert "RAY_TMPDIR /tmp/xxx" in line and "expected a folder of at most 27 characters" in line
    assert not (tmp_path / "runs").exists()


def test_storage_that_cannot_hold_a_run(capsys, tmp_path, real_ptbxl):
    (tmp_path / "file").write_text("x")
    line = _main_error(capsys, "--data", str(real_ptbxl), "--storage", str(tmp_path / "file" / "runs"))
    assert "is a file; expected a directory" in line
    readonly = tmp_path / "ro"
    readonly.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(readonly)]).returncode:
        pytest.skip("mounting a read-only tmpfs needs root")
    try:
        line = _main_error(capsys, "--data", str(real_ptbxl), "--storage", str(readonly / "runs"))
        assert "--storage" in line and "cannot be written (Read-only file system)" in line
    finally:
        subprocess.run(["umount", str(readonly)])


def test_a_seed_at_the_top_of_the_range_stays_valid():
    from raysearch.training.config import derived_seed

    assert derived_seed(2**32 - 1, 6) == 5 and derived_seed(7, 2) == 9


def test_a_threshold_rule_report_cannot_follow(capsys, tmp_path):
    line = _main_error(capsys, "report", str(tmp_path), "--threshold-rule", "sensitivity:1.5")
    assert "threshold rule 'sensitivity:1.5': expected f1, youden or sensitivity:X with 0 < X < 1" in line
