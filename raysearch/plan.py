"""A stage of a search as data (a Plan), the one function that runs it, and the one reading of
its trials.

    plan = Plan("student-4", param_space, num_samples=64, epochs=30, searcher=..., scheduler=asha)
    results = run_plan(plan, session, run_dir, resume=False, resume_hint="...")
    trials = sort_trials(results, plan.epochs)    # finished / stopped early / errored
    best = best_trial(results, plan.epochs)       # the best trial that ran every epoch

A Plan is one Tune experiment, stored as RUN_DIR/NAME. The search makes one plan per arm (the
teacher stage, each lead subset's student and baseline) and runs them all as one experiment,
RUN_DIR/trials (`one_experiment`, arms.py), each trial in RUN_DIR/trials/ARM-ID (Tune keeps an
experiment's trials in one folder); the report makes one for its seed runs. `run_plan` starts
it, or with `resume` restores it with `Tuner.restore` (finished trials and the searcher's state
kept), and refuses to return a plan that was interrupted: a stage is never summarized as if it
had finished.
"""

from __future__ import annotations

from dataclasses import dataclass

from raysearch.arms import ArmScheduler, ArmSearcher
from raysearch.errors import UserError
from raysearch.rundir import RunDir
from raysearch.session import Session
from raysearch.vocabulary import METRIC, MODE


@dataclass
class Plan:
    """One Tune experiment: what it trains, how it samples, how many trials, how long each."""

    name: str  # the experiment's folder under RUN_DIR, e.g. "student-4"
    param_space: dict  # the constants every trial's configuration carries
    num_samples: int  # the trial budget
    epochs: int  # a full trial's length: the trials that ran them all are "finished"
    searcher: object  # a Tune Searcher (the teacher stage's and the report's: a fixed list)
    scheduler: object | None = None  # a Tune TrialScheduler; None: every trial runs to the end
    mean_epochs: float = 0.0  # the epochs a trial runs on average (ASHA stops many early); 0: epochs
    label: str = ""  # how messages name it (default: its name)


def one_experiment(name: str, plans: list[Plan], after: dict[str, str] | None = None) -> Plan:
    """Several plans (arms, each with its own searcher) as one Tune experiment: each keeps its
    searcher, its scheduler and its budget (arms.ArmSearcher); `after`: arm -> the arm it waits for."""
    searcher = ArmSearcher(
        {p.name: (p.searcher, p.scheduler, p.num_samples, p.param_space) for p in plans}, after
    )
    total = sum(p.num_samples for p in plans)
    label = ", ".join(p.name for p in plans)
    return Plan(name, {}, total, max(p.epochs for p in plans), searcher, ArmScheduler(searcher), label=label)


def arm_results(results: list, plan: Plan) -> list:
    """The trials of one arm (a plan given to one_experiment) among the experiment's."""
    return [r for r in results if r.config.get("arm") == plan.name]


def _trial_dirname(trial) -> str:
    """ARM-ID for an arm's trial (TensorBoard's run filter `student-4` picks an arm's trials)."""
    arm = trial.config.get("arm")
    return f"{arm}-{trial.trial_id}" if arm else f"train_trial_{trial.trial_id}"


def _tuner(plan: Plan, session: Session, run_dir: RunDir, callbacks: list):
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from raysearch.tune_ext import HParamsLogger

    options = session.options
    search = {"search_alg": ConcurrencyLimiter(plan.searcher, max_concurrent=session.max_concurrent)}
    if getattr(plan.searcher, "metric", None) is None:
        search.update(metric=METRIC, mode=MODE)
    return tune.Tuner(
        session.trainable(),
        param_space=plan.param_space,
        tune_config=tune.TuneConfig(
            num_samples=plan.num_samples,
            reuse_actors=True,
            scheduler=plan.scheduler,
            trial_dirname_creator=_trial_dirname,
            **search,
        ),
        run_config=tune.RunConfig(
            name=plan.name,
            storage_path=run_dir.location,
            verbose=2 if options.verbose else 0,  # Tune's own tables only when asked
            callbacks=[HParamsLogger(), *callbacks],
            failure_config=tune.FailureConfig(max_failures=options.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        ),
    )


def run_plan(
    plan: Plan, session: Session, run_dir: RunDir, resume: bool, resume_hint: str, callbacks: list = ()
) -> list:
    """Run (or, with `resume`, restore and finish) the plan's experiment; its trials' Results.
    `callbacks`: Tune callbacks beside the HParams logger (the console's progress view).

    Tune returns normally when interrupted (Ctrl-C), its state saved; a plan with trials not yet
    terminated is then reported as interrupted (a UserError ending in `resume_hint`).
    """
    import sys

    from ray import tune

    from raysearch.files import DiskFull, disk_full
    from raysearch.tune_ext import atomic_experiment_state, repoint_search_state, trial_statuses

    path = run_dir.experiment(plan.name)
    if resume and tune.Tuner.can_restore(path):
        print(f"resuming {plan.name} from {path}", file=sys.stderr)
        if run_dir.uri is None:  # a RUN_DIR moved since: its new trials must stay in the new place
            moved = repoint_search_state(path, str(run_dir.path))
            if moved:
                print(f"the run was at {moved[0]}: new trials go to {run_dir.path}", file=sys.stderr)
        tuner = tune.Tuner.restore(path, trainable=session.trainable(), resume_errored=True)
    else:
        tuner = _tuner(plan, session, run_dir, list(callbacks))
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
        or len(statuses) < plan.num_samples
        or any(s not in ("TERMINATED", "ERROR") for s in statuses)
    ):
        raise UserError(
            f"interrupted during {plan.label or plan.name}; finished trials are kept in "
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
    """A plan's trials by how they ended: ran every epoch, stopped early (ASHA), errored."""
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


def evaluate_trial(result, data, out_dir, device: str, with_ci: bool = True) -> dict:
    """Evaluate a chosen (frozen) trial's final network on validation and test on `device`; write
    it and its predictions to `out_dir` (train.write_run's layout); its metrics. The driver may sit
    on a CPU-only head node while the trials ran on GPU workers, hence `device`."""
    from raysearch.train import evaluate_frozen
    from raysearch.trainable import result_blob

    return evaluate_frozen(result_blob(result), data, out_dir, device, with_ci=with_ci)
