"""Many searches ("arms") in one Tune experiment, each still its own search.

Ray does not support several Tune experiments at once in one cluster, and one after another each
arm costs at least its longest trial however many GPUs there are. So every arm of a search
(the teacher search, and the student and baseline of each lead subset) runs in one experiment
through Tune's public interfaces:

    searcher = CombinedSearcher({"teacher": (fixed, None, 6, {...}),
                            "student-4": (optuna, asha, 64, {...}), ...},
                           after={"student-4": "teacher"})
    scheduler = CombinedScheduler(searcher)

CombinedSearcher hands each new trial to an open arm (an arm another search waits for first, then
an arm's finalists, then the one with the most budget left, so no arm starves) and delegates to
that arm's own searcher: each arm keeps its own Optuna study and exactly its own trial budget.
CombinedScheduler routes every trial's results to its arm's own scheduler (ASHA): a trial is
compared only with trials of its own arm. An arm listed in `after` opens once every trial of the
arm it waits for has ended and the driver's hook (`CombinedSearcher.hooks`, e.g. putting the
chosen teachers in the object store) has run; a searcher with a `gate_ended(trials)` method (an
arm's finalists, searching/finalists.py) is handed those trials then. The searcher opens it when
Tune next asks for a trial: Tune, with every trial ended, waits on the searcher alone.

Resuming: the searcher's checkpoint holds every arm's searcher and scheduler (the ASHA brackets
too: Tune checkpoints searchers, not schedulers), and Tune unpickles the searcher and the
scheduler from one file, so the scheduler finds the restored arms through the searcher.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import ClassVar

from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from raysearch.errors import UserError
from raysearch.files import DiskFull, write_bytes
from raysearch.training.config import METRIC, MODE

ENDED = ("TERMINATED", "ERROR")


class CombinedSearcher(Searcher):
    """One Tune Searcher over several arms, each with its own searcher, scheduler and budget.

    `arms`: name -> (searcher, scheduler or None, budget, constants): the arm's Tune Searcher
    (metric and mode already set), its TrialScheduler (None: every trial runs to the end), how
    many trials it runs, and the constants merged into each of its configurations (with
    `"arm": name`). `after`: arm -> the arm whose end it waits for.

    `hooks` (gate arm -> function of its ended Tune trials) is the driver's, not the experiment's:
    a class attribute, since Tune pickles the searcher into the run and a resume unpickles it;
    the process that runs (or resumes) the search sets it. A hook that raises UserError closes
    the search (`failure`): no new trial, and CombinedScheduler stops the running ones at their next
    report; the driver then says why.
    """

    hooks: ClassVar[dict[str, Callable[[list], None]]] = {}

    def __init__(self, arms: dict[str, tuple], after: dict[str, str] | None = None):
        super().__init__(metric=METRIC, mode=MODE)
        self.searchers = {name: a[0] for name, a in arms.items()}
        self.schedulers = {name: a[1] or FIFOScheduler() for name, a in arms.items()}
        self.budget = {name: int(a[2]) for name, a in arms.items()}
        self.constants = {name: dict(a[3]) for name, a in arms.items()}
        self.after = dict(after or {})
        unknown = {a for pair in self.after.items() for a in pair} - set(arms)
        if unknown:
            raise ValueError(f"after names arms that do not exist: {sorted(unknown)}")
        self.opened = {name for name in arms if name not in self.after}
        self.given = dict.fromkeys(arms, 0)
        self.arm_of: dict[str, str] = {}  # Tune trial id -> its arm
        self.failure: str | None = None  # set when a hook failed: nothing new starts
        self.trials: dict[str, object] = {}  # Tune's Trial objects, by id (CombinedScheduler adds them)

    # -- which arm a new trial goes to ---------------------------------------------------

    def _next_arm(self) -> str | None:
        ready = [a for a in self.searchers if a in self.opened and self.given[a] < self.budget[a]]
        if not ready:
            return None
        # first the arms other searches wait for (the teacher), then finalists (an arm's answer)
        gates = [a for a in ready if any(g == a and not self._follows(d) for d, g in self.after.items())]
        finalists = [a for a in ready if self._follows(a)]
        if gates or finalists:
            return (gates or finalists)[0]
        return max(ready, key=lambda a: self.budget[a] - self.given[a])  # the first on ties

    def _follows(self, arm: str) -> bool:
        """Whether the arm's searcher takes its configurations from its gate's ended trials."""
        return callable(getattr(self.searchers[arm], "gate_ended", None))

    def suggest(self, trial_id: str) -> dict | None:
        self._open_gates()
        if self.failure is not None or all(self.given[a] >= self.budget[a] for a in self.given):
            return Searcher.FINISHED
        arm = self._next_arm()
        if arm is None:
            return None  # the arms with budget left wait for another to end: Tune asks again
        config = self.searchers[arm].suggest(trial_id)
        if config is None:
            return None
        if config == Searcher.FINISHED:  # its own searcher has no more (a fixed list ran out)
            self.budget[arm] = self.given[arm]
            return self.suggest(trial_id)
        self.given[arm] += 1
        self.arm_of[trial_id] = arm
        return {**self.constants[arm], **config, "arm": arm}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self.arm_of:
            self.searchers[self.arm_of[trial_id]].on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self.arm_of:
            self.searchers[self.arm_of[trial_id]].on_trial_complete(trial_id, result=result, error=error)

    # -- gates ---------------------------------------------------------------------------

    def waiting(self) -> list[str]:
        """The arms others still wait for (each opens its dependents once it has ended)."""
        return sorted({gate for arm, gate in self.after.items() if arm not in self.opened})

    def open_after(self, gate: str) -> None:
        """Open the arms that wait for `gate`."""
        self.opened |= {arm for arm, g in self.after.items() if g == gate}

    def close(self, failure: str) -> None:
        """No new trial from now on; `failure` says why (raised by the driver after the run)."""
        self.failure = failure

    def _open_gates(self) -> None:
        """Open the arms waiting for an arm all of whose trials have ended, after its hook."""
        for gate in self.waiting():
            trials = [t for t in self.trials.values() if t.config.get("arm") == gate]
            if self.given[gate] < self.budget[gate] or len(trials) < self.given[gate]:
                continue
            if any(t.status not in ENDED for t in trials):
                continue
            try:
                hook = type(self).hooks.get(gate)
                if hook is not None:
                    hook(trials)
            except DiskFull:
                raise  # not the search's end: Tune stops, its state intact, and a --resume retries
            except UserError as e:
                self.close(str(e))
                return
            for arm, g in self.after.items():  # e.g. an arm's finalists: its best trials
                if g == gate and self._follows(arm):
                    self.searchers[arm].gate_ended(trials)
            self.open_after(gate)

    # -- Tune's checkpoint of the searcher ----------------------------------------------

    def save(self, checkpoint_path: str) -> None:
        write_bytes(checkpoint_path, pickle.dumps({k: v for k, v in self.__dict__.items() if k != "trials"}))

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as fh:
            self.__dict__.update(pickle.load(fh))

    def __getstate__(self) -> dict:  # Tune's Trial objects stay in the process that has them
        return {**self.__dict__, "trials": {}}


class CombinedScheduler(FIFOScheduler):
    """Routes each trial's events to its arm's own scheduler (CombinedSearcher.schedulers), hands
    Tune's trials to the searcher (its gates read their status and checkpoints), and stops every
    trial once the searcher is closed."""

    def __init__(self, searcher: CombinedSearcher):
        super().__init__()
        self.searcher = searcher

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True  # every arm's scheduler was built with raysearch's metric and mode

    def _of(self, trial) -> TrialScheduler:
        return self.searcher.schedulers[trial.config["arm"]]

    def on_trial_add(self, tune_controller, trial) -> None:
        self.searcher.trials[trial.trial_id] = trial
        self._of(trial).on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if self.searcher.failure is not None:
            return TrialScheduler.STOP
        return self._of(trial).on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        self._forward("on_trial_complete", tune_controller, trial, result)

    def on_trial_error(self, tune_controller, trial) -> None:
        self._forward("on_trial_error", tune_controller, trial)

    def on_trial_remove(self, tune_controller, trial) -> None:
        self._forward("on_trial_remove", tune_controller, trial)

    def _forward(self, event: str, *args) -> None:
        try:
            getattr(self._of(args[1]), event)(*args)
        except KeyError:  # ASHA forgets a trial it never saw (restored ended, or never started)
            pass

    def debug_string(self) -> str:
        return "CombinedScheduler: " + ", ".join(
            f"{arm} {self.searcher.given[arm]}/{self.searcher.budget[arm]}" for arm in self.searcher.given
        )
