"""Finalists: which configurations are retrained, how they are suggested inside the one experiment,
and how the arm's choice, its noise floor and its lead are computed (no Ray started)."""

import math
import statistics
from types import SimpleNamespace

from ray.tune.search import Searcher

from raysearch.searching.combined import CombinedScheduler, CombinedSearcher
from raysearch.searching.experiment import TrialSet
from raysearch.searching.finalists import (
    FinalistSearcher,
    finalist_seeds,
    finalist_table,
    finalist_trials,
    lead_beyond_noise,
    noise_floor,
)
from raysearch.searching.searchers import FixedSearcher
from raysearch.training.config import METRIC, MODE


class Trial:
    """What CombinedSearcher reads of a Tune Trial."""

    def __init__(self, trial_id, config, status="RUNNING", auc=None, epochs=0):
        self.trial_id, self.config, self.status = trial_id, config, status
        self.last_result = {METRIC: auc, "epoch": epochs} if auc is not None else {}


def result(trial_id, config, auc, epochs=4, error=None):
    """What finalist_table reads of a Tune Result."""
    return SimpleNamespace(
        config=config, metrics={"trial_id": trial_id, METRIC: auc, "epoch": epochs}, error=error
    )


def test_the_finalists_are_the_top_fully_trained_trials_each_with_every_seed():
    searcher = FinalistSearcher(k=2, seeds=[7, 8], epochs=4)
    trials = [
        Trial("a", {"arm": "s", "lr": 1}, "TERMINATED", 0.80, 4),
        Trial("b", {"arm": "s", "lr": 2}, "TERMINATED", 0.95, 2),  # stopped early by ASHA: truncated
        Trial("c", {"arm": "s", "lr": 3}, "TERMINATED", 0.85, 4),
        Trial("d", {"arm": "s", "lr": 4}, "ERROR", 0.99, 4),
        Trial("e", {"arm": "s", "lr": 5}, "TERMINATED", 0.70, 4),
    ]
    searcher.gate_ended(trials)
    given = [searcher.suggest(f"f{n}") for n in range(5)]
    assert given[:4] == [
        {"lr": 3, "seed": 7, "finalist_of": "c"},
        {"lr": 3, "seed": 8, "finalist_of": "c"},
        {"lr": 1, "seed": 7, "finalist_of": "a"},
        {"lr": 1, "seed": 8, "finalist_of": "a"},
    ]
    assert given[4] == Searcher.FINISHED
    assert searcher.planned(5) == 4 and searcher.planned(1) == 2 and searcher.planned(0) == 0


def test_finalists_seeds_are_the_reports_first_seeds():
    from raysearch.training.config import derived_seed

    assert finalist_seeds(5, 3) == [derived_seed(5, 1), derived_seed(5, 2), derived_seed(5, 3)]


def _finalists_arm(k=2, seeds=(1, 2), epochs=4, budget=3):
    arm = TrialSet("s", {}, budget, epochs, FixedSearcher([{"lr": i} for i in range(budget)], METRIC, MODE))
    return arm, finalist_trials(arm, k, list(seeds))


def test_an_arms_finalists_run_in_the_same_experiment_once_its_trials_have_ended():
    arm, finalists = _finalists_arm()
    other = (FixedSearcher([{"x": i} for i in range(9)], METRIC, MODE), None, 4, {})
    searcher = CombinedSearcher(
        {"s": (arm.searcher, None, 3, {"stage": "student"}), "s-finalists": (finalists.searcher, None, 4, {}),
         "o": other},
        after={"s-finalists": "s"},
    )  # fmt: skip
    scheduler = CombinedScheduler(searcher)
    order, trials = [], []
    for n in range(6):
        config = searcher.suggest(f"t{n}")
        order.append(config["arm"])
        trials.append(Trial(f"t{n}", config))
        scheduler.on_trial_add(None, trials[-1])
    # an arm that only its finalists wait for is not put first: the arms still share the slots
    assert sorted(order) == ["o", "o", "o", "s", "s", "s"]
    for trial, auc in zip([t for t in trials if t.config["arm"] == "s"], (0.7, 0.9, 0.8), strict=True):
        trial.status, trial.last_result = "TERMINATED", {METRIC: auc, "epoch": 4}
    # the arm has ended: its finalists come before the arm with more budget left
    nxt = [searcher.suggest(f"u{n}") for n in range(4)]
    assert [c["arm"] for c in nxt] == ["s-finalists"] * 4
    assert [(c["lr"], c["seed"]) for c in nxt] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert all(c["stage"] == "student" for c in nxt)  # the arm's constants come with the configuration
    assert searcher.suggest("u4")["arm"] == "o"


def test_fewer_finished_trials_than_finalists_shrink_the_finalists_and_the_expected_count():
    arm, finalists = _finalists_arm(k=3, seeds=(1,))
    searcher = CombinedSearcher(
        {"s": (arm.searcher, None, 3, {}), "s-finalists": (finalists.searcher, None, 3, {})},
        after={"s-finalists": "s"},
    )
    scheduler = CombinedScheduler(searcher)
    trials = [Trial(f"t{n}", searcher.suggest(f"t{n}")) for n in range(3)]
    for trial, epochs in zip(trials, (4, 2, 1), strict=True):  # one ran every epoch
        scheduler.on_trial_add(None, trial)
        trial.status, trial.last_result = "TERMINATED", {METRIC: 0.8, "epoch": epochs}
    assert searcher.suggest("f0")["finalist_of"] == "t0"
    assert searcher.suggest("f1") == Searcher.FINISHED
    results = [result(t.trial_id, t.config, 0.8, t.last_result["epoch"]) for t in trials]
    assert finalists.expected_trials(results) == 1  # what run_experiment expects to have run


def test_the_choice_is_the_best_mean_not_the_best_first_run():
    first = [result("a", {"lr": 1}, 0.90), result("b", {"lr": 2}, 0.88), result("c", {"lr": 3}, 0.80)]
    again = [
        result("fa1", {"lr": 1, "seed": 1, "finalist_of": "a"}, 0.84),
        result("fa2", {"lr": 1, "seed": 2, "finalist_of": "a"}, 0.85),
        result("fb1", {"lr": 2, "seed": 1, "finalist_of": "b"}, 0.87),
        result("fb2", {"lr": 2, "seed": 2, "finalist_of": "b"}, 0.89),
        result("fb3", {"lr": 2, "seed": 3, "finalist_of": "b"}, 0.70, epochs=2),  # did not finish
    ]
    table = finalist_table(first, again, epochs=4, search_seed=0)
    assert [f["trial"] for f in table] == ["b", "a"]  # b's mean 0.88 beats a's 0.863
    assert table[0]["val_macro_auc"] == [0.88, 0.87, 0.89] and table[0]["seeds"] == [0, 1, 2]
    assert table[0]["failed"] == 1 and math.isclose(table[0]["mean"], 0.88)
    assert table[0]["results"][0] is first[1]  # its first run: the network the summary evaluates
    floor = noise_floor(table)
    pooled = math.sqrt(
        (2 * statistics.variance([0.88, 0.87, 0.89]) + 2 * statistics.variance([0.90, 0.84, 0.85])) / 4
    )
    assert math.isclose(floor, pooled)
    # the lead (0.0167) against twice the standard error of the difference of two 3-run means
    assert lead_beyond_noise(table, floor) is (
        abs(table[0]["mean"] - table[1]["mean"]) > 2 * floor * math.sqrt(2 / 3)
    )
    assert lead_beyond_noise(table, 0.001) is True and lead_beyond_noise(table, 0.05) is False
    assert lead_beyond_noise(table[:1], floor) is None and noise_floor([{**table[0], "std": None}]) is None
