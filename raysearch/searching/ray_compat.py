"""Everything that leans on Ray Tune's or Optuna's private names, in one place: an upgrade of
either breaks this file alone (checked on Ray 2.60 and Optuna 5.x). Each names what it leans on.

    AshaAwareOptunaSearch  OptunaSearch that tells Optuna an ASHA-stopped trial was PRUNED and
                           keeps finished trials in a study on disk (OptunaSearch's study, trials,
                           completed trials and study name)
    HParamsLogger          Tune's TensorBoard logger with the HParams raysearch compares trials by
                           (TBXLoggerCallback's HParams hook and trial writers)
    MLflowTrialLogger      Tune's MLflow logger (--mlflow), one MLflow run per trial across
                           --resume (MLflowLoggerCallback's trial runs); made on first use
    repoint_search_state   a moved experiment's saved search state pointed at its new place
    trial_statuses         every trial's status in a ResultGrid (its experiment analysis)
    start_local_ray        a local Ray on 127.0.0.1 only, in a temp folder of its own (Ray's
                           cluster switch and ray.init's temp folder argument)
    atomic_experiment_state  Tune's experiment state written whole or not at all, also where it is
                           copied into a local RUN_DIR (Tune's controller and storage copies)
    object_store_stats     Ray's object-store accounting (its internal API)
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

from optuna.trial import TrialState
from ray.tune.logger import TBXLoggerCallback
from ray.tune.search.optuna import OptunaSearch

from raysearch.errors import first_line
from raysearch.searching.tracking import HPARAMS, plain

log = logging.getLogger(__name__)


class AshaAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that tells Optuna an ASHA-stopped trial was PRUNED, not COMPLETE, and keeps
    every finished trial in a study on disk.

    Tune reports a trial stopped early by ASHA as complete with its truncated metric, which TPE
    would take as a finished trial's score; PRUNED lets TPE treat it as the partial result it is.
    `max_t` is the number of epochs a full trial runs.

    `studies` (an Optuna storage URL, sqlite:///RUN_DIR/optuna.db, set by `keep_studies_in`)
    receives a copy of each finished trial in the study `study_name`: its parameters, per-epoch
    values and state (COMPLETE, PRUNED, FAIL), with the Tune trial id as user attribute
    `tune_trial_id`. The sampler's own study stays in memory and travels in Tune's searcher
    checkpoint; the copy is written only when a trial ends and never twice for one Tune trial,
    so a driver killed and resumed leaves no orphan RUNNING trial and no duplicate on disk.
    """

    # A class attribute, not the instance's: Tune pickles the searcher into RUN_DIR and a resume
    # unpickles it there, so a URL kept by the instance would still name the run's old folder
    # after the run was moved; the process that resumes says where the run is now.
    studies: str | None = None

    @classmethod
    def keep_studies_in(cls, url: str | None) -> None:
        """Where every AshaAwareOptunaSearch of this process copies its finished trials."""
        cls.studies = url

    def __init__(self, max_t: int, study_name: str = "optuna", **kwargs):
        super().__init__(study_name=study_name, **kwargs)
        self.max_t = max_t
        self.last_step: dict[str, int] = {}  # per Tune trial, the last epoch Optuna was told of

    def on_trial_result(self, trial_id, result):
        super().on_trial_result(trial_id, result)
        if trial_id not in self._completed_trials and "training_iteration" in result:
            self.last_step[trial_id] = int(result["training_iteration"])

    def on_trial_complete(self, trial_id, result=None, error=False):
        if trial_id in self._completed_trials:
            return super().on_trial_complete(trial_id, result=result, error=error)  # Tune's warning
        if result is not None and not error and self.metric in result and "training_iteration" in result:
            # Tune gives the result that stopped a trial (ASHA's rung, the last epoch) only here, not
            # to on_trial_result: without this the study would lack the epoch the trial ended at
            if int(result["training_iteration"]) > self.last_step.get(trial_id, 0):
                self.on_trial_result(trial_id, result)
        stopped_early = (
            result is not None
            and not error
            and (result.get("epoch") or result.get("training_iteration", self.max_t)) < self.max_t
        )
        if stopped_early:
            self._ot_study.tell(self._ot_trials[trial_id], None, state=TrialState.PRUNED)
            self._completed_trials.add(trial_id)
        else:
            super().on_trial_complete(trial_id, result=result, error=error)
        if type(self).studies and trial_id in self._ot_trials:
            self._record(trial_id)

    def _record(self, trial_id: str) -> None:
        """Copy every finished trial not yet on disk there (so a write that failed, a full disk
        say, is made good at the next trial's end); a failure is said in one line, never fatal:
        the trials are kept in the searcher's own state meanwhile."""
        try:
            self._copy_finished()
        except Exception as e:  # SQLAlchemy's errors (a full disk, a damaged file), OSError
            path = type(self).studies.removeprefix("sqlite:///")
            if "not a database" in str(e) and os.path.isfile(path):  # damaged: set it aside, rewrite
                aside = f"{path}.damaged-{int(time.time())}"
                os.replace(path, aside)
                log.warning(f"raysearch: {path} was damaged: set aside as {aside}, written anew")
                return self._record(trial_id)
            reason = first_line(e)
            log.warning(
                f"raysearch: {path}: could not record trial {trial_id} ({reason}); it is kept in the "
                f"search's state and written at the next trial's end"
            )

    def _copy_finished(self) -> None:
        import optuna

        study = optuna.create_study(
            storage=type(self).studies, study_name=self._study_name, direction="maximize", load_if_exists=True
        )
        there = {t.user_attrs.get("tune_trial_id") for t in study.get_trials(deepcopy=False)}
        trials = self._ot_study.get_trials(deepcopy=False)
        for tune_id, ot_trial in self._ot_trials.items():
            done = trials[ot_trial.number]
            if tune_id in there or not done.state.is_finished():
                continue  # recorded before (Tune may run a trial again after a resume), or running
            study.add_trial(
                optuna.trial.create_trial(
                    state=done.state,
                    value=done.value if done.state == TrialState.COMPLETE else None,
                    params=done.params,
                    distributions=done.distributions,
                    intermediate_values=done.intermediate_values,
                    user_attrs={"tune_trial_id": tune_id},
                )
            )

    @property
    def study(self):
        """The Optuna study this searcher asks and tells."""
        return self._ot_study


class HParamsLogger(TBXLoggerCallback):
    """Tune's TensorBoard logger, with the HParams we compare trials by (constants included).

    Tune's own logger writes only the *sampled* parameters, so leads and pseudo would be missing,
    and it drops numpy types: here every value is turned into a plain Python type first. Each
    trial writes its cluster (its values) but no experiment: TensorBoard shows the first
    experiment it finds, so the one RUN_DIR holds (hparams_experiment) must be the only one.
    A value a stage does not have (the teacher's pseudo, a baseline's alpha) is left out.
    """

    def log_trial_result(self, iteration: int, trial, result: dict) -> None:
        """Each epoch's numbers as scalars named like the results (val_macro_auc, not Tune's
        ray/tune/val_macro_auc): the names the HParams experiment lists its metrics by."""
        import math

        from ray.tune.utils import flatten_dict

        if trial not in self._trial_writer:
            self.log_trial_start(trial)
        skip = ("config", "pid", "timestamp", "time_total_s", "training_iteration", "trial_id", "done")
        flat = flatten_dict({k: v for k, v in result.items() if k not in skip}, delimiter="/")
        numbers = {k: plain(v) for k, v in flat.items()}
        scalars = {
            k: v
            for k, v in numbers.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        }
        writer = self._trial_writer[trial]
        for name, value in scalars.items():
            writer.add_scalar(name, value, global_step=result["training_iteration"])
        self._trial_result[trial] = scalars
        writer.flush()

    def _try_log_hparams(self, trial, result):
        from tensorboardX.summary import hparams

        params = {k: plain(trial.config[k]) for k in HPARAMS if trial.config.get(k) is not None}
        _, session_start, session_end = hparams(hparam_dict=params, metric_dict=result)
        for summary in (session_start, session_end):
            self._trial_writer[trial].file_writer.add_summary(summary)


def _mlflow_trial_logger() -> type:
    """MLflowTrialLogger, made on first use: importing Ray's MLflow integration imports MLflow,
    which writes its telemetry settings into the home folder, so only --mlflow does."""
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    class MLflowTrialLogger(MLflowLoggerCallback):
        """Ray Tune's MLflow logger callback: one MLflow run per trial in the experiment named like
        the run, its configuration as parameters, each epoch's results as metrics at that epoch.

        Two changes. A trial restored by `--resume` is a new Trial object, to which Tune's logger
        would give a second MLflow run: here the run is found again by its `trial_id` tag. And the
        configuration is not logged again as metrics with every result.
        """

        def log_trial_start(self, trial) -> None:
            if trial not in self._trial_runs:
                self._trial_runs[trial] = self._run_of(trial)
            super().log_trial_start(trial)  # logs the configuration as the run's parameters

        def log_trial_result(self, iteration: int, trial, result: dict) -> None:
            super().log_trial_result(iteration, trial, {k: v for k, v in result.items() if k != "config"})

        def _run_of(self, trial) -> str:
            from mlflow import MlflowClient

            client = MlflowClient(self.tracking_uri)
            experiment = client.get_experiment_by_name(self.experiment_name).experiment_id
            found = client.search_runs(
                [experiment], filter_string=f"tags.trial_id = '{trial.trial_id}'", max_results=1
            )
            if found:
                return found[0].info.run_id
            arm = trial.config.get("arm")
            tags = {
                **(self.tags or {}),
                "trial_id": trial.trial_id,
                **{
                    k: str(trial.config[k])
                    for k in ("arm", "stage", "leads")
                    if trial.config.get(k) is not None
                },
            }
            name = f"{arm}-{trial.trial_id}" if arm else str(trial)  # as its folder under RUN_DIR/trials
            return client.create_run(experiment, run_name=name, tags=tags).info.run_id

    MLflowTrialLogger.__module__, MLflowTrialLogger.__qualname__ = __name__, "MLflowTrialLogger"
    return MLflowTrialLogger


def __getattr__(name: str):
    if name == "MLflowTrialLogger":  # made once, then found in the module (pickle finds it there)
        globals()[name] = _mlflow_trial_logger()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def repoint_search_state(experiment_dir: str | Path, storage_path: str) -> list[str]:
    """Before `Tuner.restore` of a local experiment that was moved (copied elsewhere, resumed with
    another --storage): Tune's saved search state keeps the experiment's storage, and the trials
    it creates after the restore would write their checkpoints to the old place (Ray 2.60:
    `SearchGenerator.set_state` puts back the pickled `Experiment`, whose `StorageContext` names
    the old folder; restored trials are re-pointed by Tune, new ones are not). Point every saved
    state at `storage_path` (the folder holding the experiment), keeping each file's times (Tune
    loads the newest). Returns the old storage paths it replaced."""
    from ray import cloudpickle

    replaced = []
    for path in Path(experiment_dir).glob("search_gen_state-*.json"):
        state = cloudpickle.loads(path.read_bytes())
        storage = state["experiment"].storage
        if storage.storage_fs_path == storage_path:
            continue
        replaced.append(storage.storage_fs_path)
        storage.storage_fs_path = storage_path
        times = path.stat()
        tmp = path.with_name(f"tmp-{path.name}")
        tmp.write_bytes(cloudpickle.dumps(state))
        tmp.replace(path)
        os.utime(path, ns=(times.st_atime_ns, times.st_mtime_ns))
    return replaced


def trial_statuses(grid) -> list[str]:
    """The status of every trial of a ResultGrid (its results list only the ones that reported)."""
    return [t.status for t in grid._experiment_analysis.trials]


@contextmanager
def loopback_only() -> Iterator[None]:
    """While a local Ray starts: its node on 127.0.0.1, so that every server it starts (GCS,
    raylet, object manager, workers, agents) listens on the loopback interface only.

    On Linux Ray takes a lone node for the first of a cluster and gives it the machine's routable
    address, even when asked for 127.0.0.1 (`_node_ip_address` is resolved away from loopback),
    and its servers then listen on every interface. On macOS and Windows it keeps a node on
    loopback; the switch it reads there (`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`, read once at import
    into `ray_constants.ENABLE_RAY_CLUSTER`) is turned off here for the start only, and in the
    environment the node's processes inherit. A search meant to span machines joins a cluster
    started with `ray start` instead (--address)."""
    from ray._private import ray_constants

    with (
        mock.patch.dict(os.environ, {ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR: "0"}),
        mock.patch.object(ray_constants, "ENABLE_RAY_CLUSTER", False),
    ):
        yield


class _Replacing:
    """`open(path, "w")` as a context manager that writes `path` under a temporary name and
    renames it over `path` only once written whole."""

    def __init__(self, path, mode, *args, **kwargs):
        self.path, self.tmp = os.fspath(path), f"{os.fspath(path)}.tmp{os.getpid()}"
        self.file = open(self.tmp, mode, *args, **kwargs)  # noqa: SIM115 (closed in __exit__)

    def __enter__(self):
        return self.file

    def __exit__(self, kind, *rest) -> None:
        try:
            self.file.close()
            if kind is None:
                os.replace(self.tmp, self.path)
        finally:
            if os.path.exists(self.tmp):
                os.unlink(self.tmp)


@contextmanager
def atomic_experiment_state() -> Iterator[None]:
    """While Tune runs: the files its controller writes (experiment_state-*.json, which Ray 2.60
    writes in place with `open(..., "w")`) and its copies of them from the driver's staging folder
    into a local RUN_DIR (pyarrow's copy_files, in place too) are written whole under a temporary
    name and renamed, so a full disk leaves the previous state intact and a --resume reads it.
    (Trials copy their checkpoints in their own processes: trainable.readable_state.)"""
    import builtins

    import pyarrow.fs as pafs
    from ray.train._internal import storage
    from ray.tune.execution import tune_controller

    def replacing_open(file, mode="r", *args, **kwargs):
        if "w" in mode and "b" not in mode:
            return _Replacing(file, mode, *args, **kwargs)
        return builtins.open(file, mode, *args, **kwargs)

    copy = storage._pyarrow_fs_copy_files

    def replacing_copy(source, destination, source_filesystem=None, destination_filesystem=None, **kw):
        if not isinstance(destination_filesystem, pafs.LocalFileSystem):
            return copy(source, destination, source_filesystem, destination_filesystem, **kw)
        tmp = f"{destination.rstrip('/')}.tmp{os.getpid()}-{threading.get_ident()}"
        try:
            copy(source, tmp, source_filesystem, destination_filesystem, **kw)
            if os.path.isfile(tmp):
                os.replace(tmp, destination)
                return None
            for root, _, files in os.walk(tmp):  # a folder: each file takes its place whole
                target = os.path.join(destination, os.path.relpath(root, tmp))
                os.makedirs(target, exist_ok=True)
                for name in files:
                    os.replace(os.path.join(root, name), os.path.join(target, name))
        finally:  # what is left of the copy (all of it after a failure)
            if os.path.isdir(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
            elif os.path.exists(tmp):
                os.unlink(tmp)
        return None

    with (
        mock.patch.object(tune_controller, "open", replacing_open, create=True),
        mock.patch.object(storage, "_pyarrow_fs_copy_files", replacing_copy),
    ):
        yield


def start_local_ray(num_cpus: int | None, logging_level: int, temp_dir: str) -> None:
    """Start a local Ray on loopback only (loopback_only), its sockets and logs in `temp_dir`."""
    import ray

    with loopback_only():
        ray.init(
            num_cpus=num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging_level,
            _temp_dir=temp_dir,
        )


def object_store_stats() -> dict:
    """Ray's own object-store accounting: the cluster's totals and the bytes held on each node."""
    import ray
    from ray._private.internal_api import get_memory_info_reply, get_state_from_address, node_stats

    stats = get_memory_info_reply(get_state_from_address(ray.get_runtime_context().gcs_address)).store_stats
    per_node = {}
    for node in ray.nodes():
        if node["Alive"]:
            reply = node_stats(node["NodeManagerAddress"], node["NodeManagerPort"], include_memory_info=False)
            per_node[node["NodeID"]] = int(reply.store_stats.object_store_bytes_used)
    return {
        "bytes_used": int(stats.object_store_bytes_used),
        "num_local_objects": int(stats.num_local_objects),
        "cumulative_created_objects": int(stats.cumulative_created_objects),
        "cumulative_created_bytes": int(stats.cumulative_created_bytes),
        "bytes_used_per_node": per_node,
    }
