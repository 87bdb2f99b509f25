"""The search's teachers: given with --teacher, chosen by an earlier invocation, or chosen when
the teacher search's trials have all ended, then shared with the students.

    teachers = Teachers(options, run_dir)      # a given --teacher is read and checked here
    teachers.start(space, sizes, cluster)
    teachers.trial_set        # the teacher search still to run, or None
    teachers.share_known()    # a given teacher, or those an earlier invocation chose
    teachers.ended(trials)    # the hook CombinedSearcher calls inside Tune's loop

Choosing inside Tune's loop must never wait for a trial's resources (finished trials' actors may
hold every slot): it saves the best teacher per embedding size and puts it in the object store,
nothing more. The students compute their cached embeddings themselves (trainable.py).
"""

from __future__ import annotations

from types import SimpleNamespace

from raysearch.errors import UserError
from raysearch.files import DiskFull
from raysearch.searching.budget import plain_config, teacher_search
from raysearch.searching.cluster import Cluster
from raysearch.searching.experiment import TrialSet, best_trial
from raysearch.searching.options import SearchOptions
from raysearch.searching.rundir import RunDir
from raysearch.searching.summary import seconds_per_epoch
from raysearch.searching.tracking import HPARAMS
from raysearch.searching.trainable import trained_network
from raysearch.training.checkpoint import (
    SavedNetwork,
    check_teacher,
    load_checkpoint,
    load_teacher,
    save_checkpoint,
)
from raysearch.training.config import METRIC


class Teachers:
    """Where the search's teachers come from, and their hand-over to the cluster."""

    def __init__(self, options: SearchOptions, run_dir: RunDir):
        self.options, self.run_dir = options, run_dir
        self.stages = run_dir.progress["stages"]
        self.measured: dict[str, float] = dict(run_dir.progress.get("seconds_per_epoch", {}))
        self.failed: list[str] = []  # why the teacher search left no teacher, if it did
        self.given = load_teacher(options.teacher) if options.teacher else None
        if self.given is not None:
            check_teacher(self.given, f"--teacher {options.teacher}")
        self.sizes: list[int] = []
        self.cluster: Cluster | None = None
        self.trial_set: TrialSet | None = None

    def start(self, space: dict, sizes: list[int], cluster: Cluster) -> None:
        """On the started cluster: the teacher search still to run (none when the teachers are
        known), and the known teachers shared."""
        self.sizes, self.cluster = sizes, cluster
        if self.given is None and not self.stages.get("teacher_done"):
            self.trial_set = teacher_search(space, sizes, self.options, cluster)
        self.share_known()

    @property
    def given_size(self) -> int | None:
        """The embedding size of a given teacher: the only one its students may use."""
        return None if self.given is None else self.given.embedding_size

    def share_known(self) -> None:
        """Put a given teacher, or those an earlier invocation chose, in the object store."""
        if self.given is not None:
            self.cluster.put_teachers({self.given_size: self.given})
            config = plain_config(self.given.config, ("lr", "arch", "width", "depth", "epochs"))
            self.stages["teacher"] = {str(self.given_size): {"given": self.options.teacher, "config": config}}
        elif self.stages.get("teacher_done"):
            saved = {
                int(s): load_checkpoint(self.run_dir.path / "teachers" / s) for s in self.stages["teacher"]
            }
            self.cluster.put_teachers(saved)

    def ended(self, trials: list) -> None:
        """Every teacher trial has ended (called inside Tune's loop): choose, save, share."""
        if self.stages.get("teacher_done"):
            return  # chosen by an earlier invocation and shared when this one started
        try:
            results = [_as_result(t) for t in trials]
            self.cluster.put_teachers(self._choose(results))
            self.measured.update(seconds_per_epoch("teacher", results))
        except DiskFull:
            raise  # not the search's end: Tune stops with its state intact, a --resume chooses again
        except UserError as e:
            self.failed.append(str(e))
            raise
        self.stages["teacher_done"] = True
        self.run_dir.progress["seconds_per_epoch"] = self.measured
        self.run_dir.save_progress()

    def _choose(self, results: list) -> dict[int, SavedNetwork]:
        """The best teacher per embedding size, saved under RUN_DIR/teachers/SIZE and recorded."""
        best = {}
        for size in self.sizes:
            mine = [r for r in results if r.config["embedding_size"] == size]
            try:
                top = best_trial(mine, self.trial_set.epochs, f"teacher {size}")
            except UserError:
                raise UserError(
                    f"no teacher with embedding size {size} finished; see {self.run_dir.location}/teacher"
                ) from None
            best[size] = trained_network(top)
            save_checkpoint(self.run_dir.path / "teachers" / str(size), best[size])
            self.stages.setdefault("teacher", {})[str(size)] = {
                "val_macro_auc": top.metrics[METRIC],
                "config": plain_config(top.config, HPARAMS),
                "trials": len(mine),
            }
        return best


def _as_result(trial) -> SimpleNamespace:
    """A Tune Trial read like a Result (config, last metrics, checkpoint, error): the teachers are
    chosen inside Tune's loop, from its trials, before the experiment's results exist."""
    return SimpleNamespace(
        config=trial.config,
        metrics=trial.last_result or {},
        checkpoint=trial.checkpoint,
        error="errored" if trial.status == "ERROR" else None,
    )
