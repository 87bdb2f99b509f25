"""What the report freezes before it reads the test fold: each arm's choice and its teacher."""

import json
import shutil

import pytest

from raysearch.errors import UserError
from raysearch.reporting.freeze import TEACHER, freeze


def _run(tmp_path, trained_models, given: str, finalists: bool):
    """A finished search's RUN_DIR as freeze reads it: a given teacher and a 2-lead student arm."""
    run = tmp_path / "run"
    (run / "best").mkdir(parents=True)
    shutil.copytree(trained_models["student-2"], run / "best" / "student-2")
    student = {"val_macro_auc": 0.8, "search_winner": {"config": {"lr": 0.5}, "val_macro_auc": 0.81}}
    student["finalists"] = {"table": []} if finalists else None
    summary = {
        "teachers": {"16": {"given": given}},
        "leads": {"2": {"student": student}},
        "seed": 3,
        "finalists": 2 if finalists else 0,
    }
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def test_a_teacher_given_as_another_searchs_run_dir_is_its_checkpoint(tmp_path, trained_models):
    other = tmp_path / "other"
    shutil.copytree(trained_models["teacher"], other / "teachers" / "16")
    frozen = freeze(_run(tmp_path, trained_models, str(other), finalists=False))
    assert frozen["teachers"] == {"16": str(other / "teachers" / "16")}
    assert frozen["configs"][TEACHER]["stage"] == "teacher" and frozen["name"] == "report"


def test_the_first_run_choice_is_frozen_beside_the_finalists(tmp_path, trained_models):
    run = _run(tmp_path, trained_models, str(trained_models["teacher"]), finalists=True)
    chosen = freeze(run)
    assert chosen["chosen_by"] == "finalists" and chosen["name"] == "report"
    first = freeze(run, chosen_by="first-run")
    assert first["name"] == "report-first-run" and first["chosen_by"] == "first-run"
    assert first["configs"]["student-2"] == {**chosen["configs"]["student-2"], "lr": 0.5, "seed": 3}
    without = _run(tmp_path / "b", trained_models, str(trained_models["teacher"]), finalists=False)
    with pytest.raises(UserError, match="--chosen-by finalists: .* ran no finalists"):
        freeze(without, chosen_by="finalists")
    assert freeze(without, chosen_by="first-run")["name"] == "report"  # its own choice
