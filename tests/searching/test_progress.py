"""The progress view: epochs ASHA lets a trial run, and the forecast from Tune's own trial list."""

from types import SimpleNamespace

import pytest

from raysearch.searching.progress import ConsoleProgress, ProgressRow, expected_epochs


def test_expected_epochs_under_asha():
    assert expected_epochs(10) == 10.0
    assert expected_epochs(4, 1, 2) == pytest.approx(1 + 0.5 * 1 + 0.25 * 2)
    assert expected_epochs(30, 5, 3) == pytest.approx(5 + 10 / 3 + 15 / 9)


def _trial(row, status, iters, seconds, last, best_epoch=None):
    return SimpleNamespace(
        config={"stage": row, "leads": "4", "arm": f"{row}-4"},
        status=status,
        last_result={"training_iteration": iters, "time_total_s": seconds, "val_macro_auc": last},
        metric_analysis={"val_macro_auc": {"max": best_epoch or last}},
        trial_id=f"{row}{iters}",
    )


def test_line_counts_trials_and_forecasts_from_measured_epochs():
    student, baseline = ProgressRow("student-4", 4, 4, 2.0), ProgressRow("baseline-4", 4, 4, 2.0)
    view = ConsoleProgress([student], slots=2, later=[baseline])
    trials = [
        _trial("student", "TERMINATED", 4, 40.0, 0.9, best_epoch=0.93),  # every epoch: 10 s each
        _trial("student", "TERMINATED", 1, 10.0, 0.95),  # stopped early by ASHA
        _trial("student", "ERROR", 1, 10.0, 0.96),
        _trial("student", "RUNNING", 2, 20.0, 0.97),
    ]
    line = view.line(trials)
    # the figure the summary will show: a full trial's last epoch (not its best epoch, not a
    # stopped, errored or running trial's)
    assert "student-4 3/4 done (1 stopped early, 1 errored), 1 running, best val AUC 0.9000" in line
    # left: student 4 x 2 - 8 epochs done = 0; baseline 4 x 2 = 8 epochs at the arms' 10 s, 2 slots
    assert "~0:40 left]" in line


def test_the_teacher_time_is_not_lent_to_the_arms():
    view = ConsoleProgress(
        [ProgressRow("teacher", 2, 8, 8)], slots=2, later=[ProgressRow("student-4", 64, 8, 4.0)]
    )
    line = view.line([_trial("teacher", "RUNNING", 1, 90.0, 0.85)])
    # 2 x 8 - 1 epochs of 90 s on 2 slots; the students' time is not guessed from the teacher's
    assert "~11:15 left in this run (the next ones: after their first epochs)" in line


def test_every_arm_at_once_gets_a_short_part_each():
    rows = [ProgressRow(n, 4, 4, 2.0) for n in ("teacher", "student-4", "baseline-4")]
    view = ConsoleProgress(rows, slots=2)
    trials = [_trial("teacher", "RUNNING", 1, 10.0, 0.8), _trial("baseline", "TERMINATED", 4, 40.0, 0.9)]
    trials[0].config["arm"] = "teacher"
    line = view.line(trials)
    assert line.endswith("teacher 0/4 (1 running) | student-4 0/4 | baseline-4 1/4"), line


def test_the_wait_for_the_teachers_cached_embeddings_is_not_an_epoch_cost():
    from raysearch.searching.progress import epoch_seconds

    computed = {"training_iteration": 8, "time_total_s": 440.0, "teacher_cache_seconds": 400.0}
    assert epoch_seconds(computed) == 5.0  # not 55 s per epoch: the forecast would be 11x too long
    assert epoch_seconds({"training_iteration": 4, "time_total_s": 20.0}) == 5.0
    assert epoch_seconds({"training_iteration": 0, "time_total_s": 3.0}) == 0.0
