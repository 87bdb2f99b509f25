"""Extensions of Ray Tune and Optuna, in one place: an upgrade of either breaks this file alone.

Each names the private Ray/Optuna API it leans on; nowhere else in raysearch uses one.

    AshaAwareOptunaSearch  OptunaSearch that tells Optuna an ASHA-stopped trial was PRUNED and
                           keeps finished trials in a study on disk (private: OptunaSearch.
                           _ot_study, _ot_trials, _completed_trials, _study_name)
    FixedSearcher          a Tune Searcher over a fixed list of configurations (public API only)
    HParamsLogger          Tune's TensorBoard logger with the HParams raysearch compares trials by
                           (private: TBXLoggerCallback._try_log_hparams, _trial_writer)
    repoint_search_state   a moved experiment's saved search state pointed at its new place
                           (private: SearchGenerator's search_gen_state-*.json, a pickle)
    trial_statuses         every trial's status in a ResultGrid, PENDING/RUNNING ones included
                           (private: ResultGrid._experiment_analysis; no public equivalent)
    hparams_experiment     RUN_DIR's one TensorBoard HParams experiment, covering every arm
    MLflowTrialLogger      Tune's MLflow logger (--mlflow), one MLflow run per trial across
                           --resume (private: MLflowLoggerCallback._trial_runs)
    open_mlflow            check an MLflow tracking URI and make the run's experiment there
    object_store_stats     Ray's object-store accounting (private: ray._private.internal_api)
    start_local_ray        a local Ray that listens on 127.0.0.1 only, in a temp folder of its own
                           (private: ray._private.ray_constants.ENABLE_RAY_CLUSTER, ray.init's
                           _temp_dir)
    atomic_experiment_state  Tune's experiment state written whole or not at all, staged and
                           copied to a local RUN_DIR (a full disk left it truncated, and every
                           later resume failed on it) (private: tune_controller's writes,
                           ray.train._internal.storage._pyarrow_fs_copy_files)
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

from optuna.trial import TrialState
from ray.tune.logger import TBXLoggerCallback
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from raysearch.errors import UserError, first_line
from raysearch.files import write_bytes
from raysearch.vocabulary import HPARAMS


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

    def on_trial_complete(self, trial_id, result=None, error=False):
        if trial_id in self._completed_trials:
            return super().on_trial_complete(trial_id, result=result, error=error)  # Tune's warning
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
                print(f"raysearch: {path} was damaged: set aside as {aside}, written anew", file=sys.stderr)
                return self._record(trial_id)
            reason = first_line(e)
            print(
                f"raysearch: {path}: could not record trial {trial_id} ({reason}); it is kept in the "
                f"search's state and written at the next trial's end",
                file=sys.stderr,
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


class FixedSearcher(Searcher):
    """Suggests the given configurations in order, each once, then reports it is finished."""

    def __init__(self, configs: list[dict], metric: str | None = None, mode: str | None = None):
        super().__init__(metric=metric, mode=mode)
        self.configs = list(configs)
        self.given: dict[str, int] = {}

    def suggest(self, trial_id: str):
        if trial_id in self.given:
            return dict(self.configs[self.given[trial_id]])
        if len(self.given) >= len(self.configs):
            return Searcher.FINISHED
        self.given[trial_id] = len(self.given)
        return dict(self.configs[self.given[trial_id]])

    def on_trial_complete(self, trial_id, result=None, error=False):
        pass

    def save(self, checkpoint_path: str) -> None:
        import pickle

        write_bytes(checkpoint_path, pickle.dumps({"configs": self.configs, "given": self.given}))

    def restore(self, checkpoint_path: str) -> None:
        import pickle

        with open(checkpoint_path, "rb") as fh:
            state = pickle.load(fh)
        self.configs, self.given = state["configs"], state["given"]


def _plain(value):
    """A value TensorBoard's HParams accept: Python scalars, not numpy ones."""
    return value.item() if hasattr(value, "item") else value


class HParamsLogger(TBXLoggerCallback):
    """Tune's TensorBoard logger, with the HParams we compare trials by (constants included).

    Tune's own logger writes only the *sampled* parameters, so leads and pseudo would be missing,
    and it drops numpy types: here every value is turned into a plain Python type first. Each
    trial writes its session (its values) but no experiment: TensorBoard shows the first
    experiment it finds, so the one RUN_DIR holds (hparams_experiment) must be the only one.
    A value a stage does not have (the teacher's pseudo, a baseline's alpha) is left out.
    """

    def _try_log_hparams(self, trial, result):
        from tensorboardX.summary import hparams

        params = {k: _plain(trial.config[k]) for k in HPARAMS if trial.config.get(k) is not None}
        _, session_start, session_end = hparams(hparam_dict=params, metric_dict=result)
        for summary in (session_start, session_end):
            self._trial_writer[trial].file_writer.add_summary(summary)


# One value of each HParam's type: the experiment below lists every arm's parameters by them.
HPARAM_TYPES = {
    "alpha": 1.0,
    "sim": "l1",
    "embedding_size": 128,
    "lr": 1e-3,
    "leads": "4",
    "pseudo": True,
    "stage": "student",
}


def hparams_experiment(logdir: str, metrics: tuple[str, ...]) -> None:
    """Write RUN_DIR's one HParams experiment (once): every parameter any arm has, whatever the
    trial TensorBoard happens to read first, and `metrics` as Tune logs them (ray/tune/...)."""
    from tensorboardX import FileWriter
    from tensorboardX.summary import hparams

    if any(Path(logdir).glob("events.out.tfevents.*")):
        return  # a resumed search: written by its first invocation
    experiment, _, _ = hparams(hparam_dict=HPARAM_TYPES, metric_dict={f"ray/tune/{m}": 0.0 for m in metrics})
    writer = FileWriter(logdir)
    writer.add_summary(experiment)
    writer.close()


def open_mlflow(tracking_uri: str, experiment: str) -> None:
    """Check `--mlflow TRACKING_URI` before anything runs (MLflow installed, the store reachable
    and writable) and make the run's experiment there; a one-line error otherwise. An HTTP server
    that does not answer fails after one try, not after MLflow's minutes of retries."""
    try:
        import mlflow
    except ImportError:
        raise UserError("--mlflow needs MLflow: pip install 'raysearch[mlflow]'") from None
    quick = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
    try:
        with mock.patch.dict(os.environ, quick):  # for this check only, not for the trials' logging
            client = mlflow.MlflowClient(tracking_uri)
            if client.get_experiment_by_name(experiment) is None:
                client.create_experiment(experiment)
    except Exception as e:  # MLflow raises many kinds (MlflowException, OSError, requests' errors)
        reason = first_line(e)
        if "MLFLOW_ALLOW_FILE_STORE" in reason:  # MLflow 3's paragraph, said in one line
            reason = (
                "MLflow refuses a file store unless MLFLOW_ALLOW_FILE_STORE=true is set; a database "
                "store (sqlite:///PATH/mlflow.db) needs nothing"
            )
        raise UserError(f"--mlflow {tracking_uri}: {reason[:300]}") from None


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
