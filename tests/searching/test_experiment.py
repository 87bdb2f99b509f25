"""How a plan's trials are read: finished, stopped early, errored, and the best of the finished."""

from types import SimpleNamespace

import pytest

from raysearch.errors import UserError
from raysearch.searching.experiment import best_trial, sort_trials


def _result(auc, epochs, error=None):
    return SimpleNamespace(metrics={"val_macro_auc": auc, "training_iteration": epochs}, error=error)


def test_best_is_chosen_among_trials_that_ran_every_epoch():
    full, better_but_stopped, errored = _result(0.8, 4), _result(0.9, 2), _result(0.95, 3, error="boom")
    trials = sort_trials([full, better_but_stopped, errored], epochs=4)
    assert trials == {"finished": [full], "stopped_early": [better_but_stopped], "errored": [errored]}
    assert best_trial([full, better_but_stopped, errored, _result(0.7, 4)], 4, "arm") is full
    with pytest.raises(
        UserError, match="arm: no trial finished all 4 epochs \\(of 2: 1 stopped early, 1 errored\\)"
    ):
        best_trial([better_but_stopped, errored], 4, "arm")
    with pytest.raises(UserError, match="^arm: no trial ran$"):
        best_trial([], 4, "arm")
