"""A set of trials as data (TrialSet: one searcher, its scheduler and budget), the one function
that runs an experiment, and the one reading of its trials.

    arms = combine("trials", [teacher_search, student_4, baseline_4], after={"student-4": "teacher"})
    results = run_experiment(arms, cluster, run_dir, resume=False, resume_hint="...")
    trials = sort_trials(results, epochs)    # finished / stopped early / errored
    best = best_trial(results, epochs, what) # the best trial that ran every epoch

The search combines its teacher search and every arm into one Tune experiment, RUN_DIR/trials
(each trial in RUN_DIR/trials/ARM-ID); the report makes one for its seed runs. `run_experiment`
starts it, or with `resume` restores it with `Tuner.restore`, and refuses to return an experiment
that was interrupted: an arm is never summarized as if it had finished.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from raysearch.errors import UserError
from raysearch.searching.cluster import Cluster
from raysearch.searching.combined import CombinedScheduler, CombinedSearcher
from raysearch.searching.rundir import RunDir
from raysearch.training.config import METRIC, MODE

log = logging.getLogger(__name__)


@dataclass
class TrialSet:
    """One Tune experiment: what it trains, how it samples, how many trials, how long each."""

    name: str  # the experiment's folder under RUN_DIR, e.g. "student-4"
    param_space: dict  # the constants every trial's configuration carries
    num_samples: int  # the trial budget
    epochs: int  # a full trial's length: the trials that ran them all are "finished"
    searcher: object  # a Tune Searcher (the teacher search's and the report's: a fixed list)
    scheduler: object | None = None  # a Tune TrialScheduler; None: every trial runs to the end
    mean_epochs: float = 0.0  # the epochs a trial runs on average (ASHA stops many early); 0: epochs
    label: str = ""  # how messages name it (default: its name)
    # the trials it runs, given the experiment's results, when fewer than num_samples may be right
    # (an arm's finalists: fewer when fewer of its trials ran every epoch); None: num_samples
    expected: Callable[[list], int] | None = None

    def expected_trials(self, results: list) -> int:
        return self.num_samples if self.expected is None else self.expected(results)


def combine(name: str, trial_sets: list[TrialSet], after: dict[str, str] | None = None) -> TrialSet:
    """Several trial_sets (arms, each with its own searcher) as one Tune experiment: each keeps its
    searcher, its scheduler and its budget (arms.CombinedSearcher); `after`: arm -> the arm it waits for."""
    searcher = CombinedSearcher(
        {p.name: (p.searcher, p.scheduler, p.num_samples, p.param_space) for p in trial_sets}, after
    )
    total = sum(p.num_samples for p in trial_sets)
    label = ", ".join(p.name for p in trial_sets)

    def expected(results: list) -> int:
        return sum(p.expected_trials(results) for p in trial_sets)

    epochs = max(p.epochs for p in trial_sets)
    return TrialSet(
        name, {}, total, epochs, searcher, CombinedScheduler(searcher), label=label, expected=expected
    )


def _trial_dirname(trial) -> str:
    """ARM-ID for an arm's trial (TensorBoard's run filter `student-4` picks an arm's trials)."""
    arm = trial.config.get("arm")
    return f"{arm}-{trial.trial_id}" if arm else f"train_trial_{trial.trial_id}"


def _tuner(trial_set: TrialSet, cluster: Cluster, run_dir: RunDir, callbacks: list):
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from raysearch.searching.ray_compat import HParamsLogger

    options = cluster.options
    search = {"search_alg": ConcurrencyLimiter(trial_set.searcher, max_concurrent=cluster.max_concurrent)}
    if getattr(trial_set.searcher, "metric", None) is None:
        search.update(metric=METRIC, mode=MODE)
    return tune.Tuner(
        cluster.trainable(),
        param_space=trial_set.param_space,
        tune_config=tune.TuneConfig(
            num_samples=trial_set.num_samples,
            reuse_actors=True,
            scheduler=trial_set.scheduler,
            trial_dirname_creator=_trial_dirname,
            **search,
        ),
        run_config=tune.RunConfig(
            name=trial_set.name,
            storage_path=run_dir.location,
            verbose=2 if options.verbose else 0,  # Tune's own tables only when asked
            callbacks=[HParamsLogger(), *callbacks],
            failure_config=tune.FailureConfig(max_failures=options.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        ),
    )


def run_experiment(
    trial_set: TrialSet,
    cluster: Cluster,
    run_dir: RunDir,
    resume: bool,
    resume_hint: str,
    callbacks: list = (),
) -> list:
    """Run (or, with `resume`, restore and finish) the trial_set's experiment; its trials' Results.
    `callbacks`: Tune callbacks beside the HParams logger (the console's progress view).

    Tune returns normally when interrupted (Ctrl-C), its state saved; a trial_set with trials not yet
    terminated is then reported as interrupted (a UserError ending in `resume_hint`).
    """

    from ray import tune

    from raysearch.files import DiskFull, disk_full
    from raysearch.searching.ray_compat import atomic_experiment_state, repoint_search_state, trial_statuses

    path = run_dir.experiment(trial_set.name)
    if resume and tune.Tuner.can_restore(path):
        log.info(f"resuming {trial_set.name} from {path}")
        if run_dir.uri is None:  # a RUN_DIR moved since: its new trials must stay in the new place
            moved = repoint_search_state(path, str(run_dir.path))
            if moved:
                log.info(f"the run was at {moved[0]}: new trials go to {run_dir.path}")
        tuner = tune.Tuner.restore(path, trainable=cluster.trainable(), resume_errored=True)
    else:
        tuner = _tuner(trial_set, cluster, run_dir, list(callbacks))
    try:
        with atomic_experiment_state():
            grid, interrupted = _fit(tuner)
    except Exception as e:
        if disk_full(e):  # Tune's state is intact (atomic_experiment_state): free space, resume
            raise DiskFull(
                f"the disk holding {run_dir.location} is full; free some space, then {resume_hint}"
            ) from None
        raise
    statuses = trial_statuses(grid)
    if (
        interrupted
        or len(statuses) < trial_set.expected_trials(list(grid))
        or any(s not in ("TERMINATED", "ERROR") for s in statuses)
    ):
        raise UserError(
            f"interrupted during {trial_set.label or trial_set.name}; finished trials are kept in "
            f"{run_dir.location}: {resume_hint}"
        )
    return list(grid)


def _fit(tuner) -> tuple:
    """Tuner.fit, and whether Ctrl-C (SIGINT) ended it. Tune stops its trials on SIGINT and marks
    them TERMINATED like finished ones, but it puts back the handler it found: a marker installed
    here is back in place exactly when the run was interrupted."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():  # signals: main thread only
        return tuner.fit(), False

    def marker(sig, frame):  # a second Ctrl-C after Tune's: stop at once, as Python would
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, marker)
    try:
        grid = tuner.fit()
    finally:
        interrupted = signal.getsignal(signal.SIGINT) is marker
        signal.signal(signal.SIGINT, previous)
    return grid, interrupted


def epochs_run(metrics: dict) -> int:
    """The epochs a trial's network was trained for: its own count (Tune's training_iteration
    also counts epochs redone after a damaged checkpoint)."""
    return int(metrics.get("epoch") or metrics.get("training_iteration") or 0)


def sort_trials(results: list, epochs: int) -> dict[str, list]:
    """A trial_set's trials by how they ended: ran every epoch, stopped early (ASHA), errored."""
    errored = [r for r in results if r.error is not None]
    finished = [r for r in results if r.error is None and epochs_run(r.metrics) == epochs]
    stopped = [r for r in results if r.error is None and r not in finished]
    return {"finished": finished, "stopped_early": stopped, "errored": errored}


def best_trial(results: list, epochs: int, what: str) -> object:
    """The trial with the best validation metric among those that ran every epoch."""
    if not results:
        raise UserError(f"{what}: no trial ran")
    trials = sort_trials(results, epochs)
    if not trials["finished"]:
        raise UserError(
            f"{what}: no trial finished all {epochs} epochs (of {len(results)}: "
            f"{len(trials['stopped_early'])} stopped early, {len(trials['errored'])} errored)"
        )
    return max(trials["finished"], key=lambda r: r.metrics[METRIC])


def failed_once(result) -> bool:
    """Whether a trial ever crashed: Tune writes error.txt into its folder, even when a retry from
    its checkpoint then finished it (so this counts the crashes FailureConfig recovered)."""
    import pyarrow.fs as pafs

    fs = result.filesystem or pafs.LocalFileSystem()
    return fs.get_file_info(f"{result.path}/error.txt").type != pafs.FileType.NotFound
