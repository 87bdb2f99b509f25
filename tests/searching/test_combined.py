"""Many arms in one Tune experiment: budgets, gates, fair sharing, each arm's own ASHA, restore."""

import os
import shutil
import tempfile

import pytest
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import Searcher

from raysearch.errors import UserError
from raysearch.searching.combined import CombinedScheduler, CombinedSearcher
from raysearch.searching.searchers import FixedSearcher
from raysearch.training.config import METRIC, MODE


def _fixed(n: int, **extra) -> FixedSearcher:
    return FixedSearcher([{"i": i, **extra} for i in range(n)], metric=METRIC, mode=MODE)


def _asha(max_t: int) -> ASHAScheduler:
    return ASHAScheduler(
        metric=METRIC,
        mode=MODE,
        time_attr="training_iteration",
        max_t=max_t,
        grace_period=1,
        reduction_factor=2,
    )


def test_each_arm_gets_exactly_its_budget_gates_first_then_the_most_left():
    arms = {
        "teacher": (_fixed(2), None, 2, {"stage": "teacher"}),
        "baseline": (_fixed(9), None, 3, {"stage": "baseline"}),
        "student": (_fixed(9), None, 5, {"stage": "student"}),
    }
    searcher = CombinedSearcher(arms, after={"student": "teacher"})
    order = []
    for n in range(5):
        config = searcher.suggest(f"t{n}")
        order.append(config["arm"] if config else config)
    # the teacher first (the students wait for it), the baseline meanwhile; then nothing to give
    assert order == ["teacher", "teacher", "baseline", "baseline", "baseline"]
    assert searcher.suggest("t5") is None and searcher.waiting() == ["teacher"]
    searcher.open_after("teacher")
    rest = [searcher.suggest(f"u{n}") for n in range(6)]
    assert [c["arm"] for c in rest[:5]] == ["student"] * 5 and rest[5] == Searcher.FINISHED
    assert searcher.given == searcher.budget == {"teacher": 2, "baseline": 3, "student": 5}
    assert rest[0] == {
        "stage": "student",
        "i": 0,
        "arm": "student",
    }  # its constants, its own searcher's config


def test_no_arm_starves_the_one_with_most_budget_left_goes_next():
    arms = {name: (_fixed(10), None, budget, {}) for name, budget in (("a", 6), ("b", 3), ("c", 3))}
    searcher = CombinedSearcher(arms)
    order = [searcher.suggest(f"t{n}")["arm"] for n in range(12)]
    assert order[:4] == ["a", "a", "a", "a"]  # a had twice the budget: it catches up first
    assert sorted(order[4:7]) == ["a", "b", "c"]  # then they take turns
    assert {a: order.count(a) for a in "abc"} == {"a": 6, "b": 3, "c": 3}
    assert searcher.suggest("t12") == Searcher.FINISHED


def test_a_closed_search_gives_nothing_and_its_scheduler_stops_every_trial():
    searcher = CombinedSearcher({"a": (_fixed(3), None, 3, {})})
    searcher.close("no teacher finished")
    assert searcher.suggest("t0") == Searcher.FINISHED

    class Trial:
        trial_id, config = "t0", {"arm": "a"}

    assert CombinedScheduler(searcher).on_trial_result(None, Trial(), {METRIC: 0.5}) == CombinedScheduler.STOP


def test_the_restored_searcher_brings_back_every_arm_and_its_brackets(tmp_path):
    import ray.cloudpickle as pickle

    def make():
        return CombinedSearcher({"a": (_fixed(3), _asha(4), 3, {}), "b": (_fixed(3), _asha(4), 3, {})})

    searcher = make()
    scheduler = CombinedScheduler(searcher)

    class Trial:
        def __init__(self, trial_id, arm):
            self.trial_id, self.config = trial_id, {"arm": arm}

    for n in range(2):
        trial = Trial(f"t{n}", searcher.suggest(f"t{n}")["arm"])
        scheduler.on_trial_add(None, trial)
        scheduler.on_trial_result(None, trial, {"training_iteration": 1, METRIC: 0.1 * (n + 1)})
    searcher.save(str(tmp_path / "searcher.pkl"))
    # Tune pickles the searcher and the scheduler into one file (tuner.pkl), then restores the
    # searcher's checkpoint into the unpickled searcher: the scheduler must see the restored arms
    fresh = make()
    fresh_searcher, fresh_scheduler = pickle.loads(pickle.dumps((fresh, CombinedScheduler(fresh))))
    assert fresh_scheduler.searcher is fresh_searcher
    fresh_searcher.restore(str(tmp_path / "searcher.pkl"))
    assert fresh_searcher.given == {"a": 1, "b": 1} and fresh_searcher.arm_of == searcher.arm_of
    rungs = {arm: s._brackets[0]._rungs for arm, s in fresh_scheduler.searcher.schedulers.items()}
    assert {arm: [dict(r[1]) for r in rung if r[1]] for arm, rung in rungs.items()} == {
        "a": [{"t0": pytest.approx(0.1)}],
        "b": [{"t1": pytest.approx(0.2)}],
    }


@pytest.mark.slow
def test_asha_compares_a_trial_only_with_its_own_arm(tmp_path):
    """Two arms of very different levels: the low arm's trials all score the same and so ASHA,
    comparing within the arm, never stops them (one ASHA over both arms would rank them below
    every trial of the high arm)."""
    import ray
    from ray import tune

    def run(config):  # a trial that trains nothing: it reports its arm's level at every epoch
        for epoch in range(config["epochs"]):
            tune.report({METRIC: config["level"] + config["i"] * config["step"] * (epoch + 1)})

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    epochs, budget = 4, 8
    arms = {
        "high": (_fixed(budget), _asha(epochs), budget, {"level": 0.9, "step": -0.01, "epochs": epochs}),
        "low": (_fixed(budget), _asha(epochs), budget, {"level": 0.1, "step": 0.0, "epochs": epochs}),
    }
    searcher = CombinedSearcher(arms)
    ray_tmp = tempfile.mkdtemp(prefix="rs", dir="/tmp")  # Ray's socket paths must stay short
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=ray_tmp)
    try:
        grid = tune.Tuner(
            run,
            tune_config=tune.TuneConfig(
                search_alg=searcher, scheduler=CombinedScheduler(searcher), num_samples=2 * budget
            ),
            run_config=tune.RunConfig(storage_path=str(tmp_path / "runs"), name="arms", verbose=0),
        ).fit()
    finally:
        ray.shutdown()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    iterations = {"high": [], "low": []}
    for result in grid:
        iterations[result.config["arm"]].append(result.metrics["training_iteration"])
    assert len(iterations["high"]) == len(iterations["low"]) == budget
    assert iterations["low"] == [epochs] * budget  # never stopped because the high arm scores higher
    assert min(iterations["high"]) < epochs  # ASHA does stop trials within the high arm


def test_a_waiting_arm_opens_when_its_gate_has_ended_after_the_hook():
    class Trial:
        def __init__(self, trial_id, config):
            self.trial_id, self.config, self.status = trial_id, config, "RUNNING"

    arms = {"teacher": (_fixed(2), None, 2, {}), "student": (_fixed(3), None, 3, {})}
    searcher, seen = CombinedSearcher(arms, after={"student": "teacher"}), []
    scheduler = CombinedScheduler(searcher)
    CombinedSearcher.hooks = {"teacher": lambda trials: seen.append(sorted(t.trial_id for t in trials))}
    try:
        teachers = [Trial(f"t{n}", searcher.suggest(f"t{n}")) for n in range(2)]
        for trial in teachers:
            scheduler.on_trial_add(None, trial)
        assert searcher.suggest("s0") is None and seen == []  # running: the students wait
        teachers[0].status, teachers[1].status = "TERMINATED", "ERROR"
        assert searcher.suggest("s0")["arm"] == "student" and seen == [["t0", "t1"]]
        assert searcher.suggest("s1")["arm"] == "student" and len(seen) == 1  # the hook ran once

        def no_teacher(trials):
            raise UserError("no teacher finished")

        closed = CombinedSearcher({"teacher": (_fixed(1), None, 1, {}), "student": (_fixed(1), None, 1, {})},
                             after={"student": "teacher"})  # fmt: skip
        CombinedSearcher.hooks = {"teacher": no_teacher}
        trial = Trial("t0", closed.suggest("t0"))
        CombinedScheduler(closed).on_trial_add(None, trial)
        trial.status = "TERMINATED"
        assert closed.suggest("s0") == Searcher.FINISHED and closed.failure == "no teacher finished"
    finally:
        CombinedSearcher.hooks = {}
