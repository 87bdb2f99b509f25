"""The Tune/Optuna extensions, each on its own: pruned ASHA trials, fixed configurations, HParams."""

import os
from pathlib import Path

import pytest
from conftest import mlflow_runs
from optuna.trial import TrialState

from raysearch.searching.ray_compat import AshaAwareOptunaSearch, HParamsLogger
from raysearch.searching.searchers import FixedSearcher
from raysearch.searching.space import to_optuna
from raysearch.training.config import METRIC, MODE


def test_asha_stopped_trials_reach_optuna_as_pruned():
    searcher = AshaAwareOptunaSearch(
        4, space=to_optuna({"lr": {"loguniform": [1e-4, 1e-2]}}), metric=METRIC, mode=MODE, seed=0
    )
    for trial_id, iterations in (("stopped", 2), ("finished", 4)):
        assert "lr" in searcher.suggest(trial_id)
        for it in range(1, iterations):  # as Tune does: the result that stops a trial goes to
            searcher.on_trial_result(trial_id, {METRIC: 0.5 + it / 10, "training_iteration": it})
        searcher.on_trial_complete(  # on_trial_complete only (ASHA's rung, or the last epoch)
            trial_id, {METRIC: 0.5 + iterations / 10, "training_iteration": iterations}
        )
    states = [t.state for t in searcher.study.trials]
    assert states == [TrialState.PRUNED, TrialState.COMPLETE]
    assert searcher.study.best_value == 0.9  # the truncated 0.7 is not taken as a finished score
    # the epoch each trial ended at is in the study: the pruned trial ran 2 epochs, has 2 values
    assert [t.intermediate_values for t in searcher.study.trials] == [
        {1: 0.6, 2: 0.7},
        {1: 0.6, 2: 0.7, 3: 0.8, 4: 0.9},
    ]


def test_finished_trials_are_kept_on_disk_once_each(tmp_path):
    import optuna

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    space = to_optuna({"lr": {"loguniform": [1e-4, 1e-2]}})
    AshaAwareOptunaSearch.keep_studies_in(storage)
    searcher = AshaAwareOptunaSearch(4, study_name="student-4", space=space, metric=METRIC, mode=MODE, seed=0)
    for trial_id, iterations in (("stopped", 2), ("finished", 4), ("crashed", 1)):
        searcher.suggest(trial_id)
        for it in range(1, iterations + 1):
            searcher.on_trial_result(trial_id, {METRIC: 0.5 + it / 10, "training_iteration": it})
        result = {METRIC: 0.5 + iterations / 10, "training_iteration": iterations}
        searcher.on_trial_complete(
            trial_id, None if trial_id == "crashed" else result, error=trial_id == "crashed"
        )
    searcher.save(str(tmp_path / "searcher.pkl"))  # what Tune checkpoints, then restores after a kill
    restored = AshaAwareOptunaSearch(4, space=space, metric=METRIC, mode=MODE)
    restored.restore(str(tmp_path / "searcher.pkl"))
    restored.on_trial_complete("finished", {METRIC: 0.9, "training_iteration": 4})  # told again
    AshaAwareOptunaSearch.keep_studies_in(None)
    trials = optuna.load_study(study_name="student-4", storage=storage).trials
    assert [(t.user_attrs["tune_trial_id"], t.state.name) for t in trials] == [
        ("stopped", "PRUNED"),
        ("finished", "COMPLETE"),
        ("crashed", "FAIL"),
    ]
    assert trials[1].value == 0.9 and trials[1].intermediate_values == {1: 0.6, 2: 0.7, 3: 0.8, 4: 0.9}
    assert trials[0].intermediate_values == {1: 0.6, 2: 0.7} and "lr" in trials[1].params


def test_a_study_file_that_cannot_be_written_catches_up_or_is_set_aside(tmp_path, caplog):
    import optuna

    db = tmp_path / "optuna.db"
    space = to_optuna({"lr": {"loguniform": [1e-4, 1e-2]}})
    AshaAwareOptunaSearch.keep_studies_in(f"sqlite:///{tmp_path / 'missing-folder' / 'optuna.db'}")
    searcher = AshaAwareOptunaSearch(4, study_name="student-4", space=space, metric=METRIC, mode=MODE, seed=0)
    try:
        for trial_id in ("first", "second"):
            searcher.suggest(trial_id)
            searcher.on_trial_complete(trial_id, {METRIC: 0.8, "training_iteration": 4})
            if trial_id == "first":  # not writable (as on a full disk): said, the search goes on
                assert "could not record trial first" in caplog.text
                db.write_bytes(b"damaged" * 200)  # and now a damaged file where the studies go
                AshaAwareOptunaSearch.keep_studies_in(f"sqlite:///{db}")
        assert "was damaged: set aside as" in caplog.text
    finally:
        AshaAwareOptunaSearch.keep_studies_in(None)
    trials = optuna.load_study(study_name="student-4", storage=f"sqlite:///{db}").trials
    assert [t.user_attrs["tune_trial_id"] for t in trials] == ["first", "second"]  # caught up
    assert len(list(tmp_path.glob("optuna.db.damaged-*"))) == 1


def test_fixed_searcher_gives_each_configuration_once_and_survives_a_restore(tmp_path):
    configs = [{"run": "a", "seed": 1}, {"run": "b", "seed": 2}]
    searcher = FixedSearcher(configs)
    assert searcher.suggest("t1") == configs[0]
    searcher.save(str(tmp_path / "state.pkl"))
    restored = FixedSearcher([])
    restored.restore(str(tmp_path / "state.pkl"))
    assert restored.suggest("t1") == configs[0]  # a restored trial keeps its configuration
    assert restored.suggest("t2") == configs[1]
    assert restored.suggest("t3") == FixedSearcher.FINISHED


class _Trial:
    """What the TensorBoard logger reads of a Tune trial."""

    def __init__(self, path: Path, config: dict):
        self.config, self.local_path, self.trial_id = config, str(path), path.name
        self.evaluated_params = {"lr": config["lr"]}  # what Tune sampled; constants are not in it

    def init_local_path(self):
        Path(self.local_path).mkdir(parents=True, exist_ok=True)

    def __hash__(self):
        return hash(self.trial_id)


def test_hparams_logger_writes_plain_values_of_constants_too(tmp_path):
    import numpy as np
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.plugins.hparams import plugin_data_pb2

    config = {"alpha": np.float64(0.5), "sim": "l1", "embedding_size": np.int64(16), "lr": 1e-3}
    config.update(leads="4", pseudo=None, stage="baseline", width=8)
    trial = _Trial(tmp_path / "trial", config)
    logger = HParamsLogger()
    logger.log_trial_start(trial)
    logger.log_trial_result(1, trial, {METRIC: 0.7, "training_iteration": 1})
    logger.log_trial_end(trial)
    found = {}
    for path in (tmp_path / "trial").glob("events.out.tfevents.*"):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.tag == "_hparams_/session_start_info":
                    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                    for k, v in data.session_start_info.hparams.items():
                        found[k] = getattr(v, v.WhichOneof("kind"))
    assert found == {
        "alpha": 0.5,
        "sim": "l1",
        "embedding_size": 16.0,
        "lr": 1e-3,
        "leads": "4",
        "stage": "baseline",
    }  # fmt: skip  (pseudo None: left out, so its column keeps one type, bool)
    tags = {
        v.tag
        for path in (tmp_path / "trial").glob("events.out.tfevents.*")
        for event in EventFileLoader(str(path)).Load()
        for v in event.summary.value
    }
    assert "_hparams_/experiment" not in tags  # the run's one experiment is hparams_experiment's
    assert METRIC in tags and not any(t.startswith("ray/") for t in tags)


def test_the_hparams_experiment_lists_every_hparam():
    from raysearch.searching.tracking import HPARAM_TYPES, HPARAMS

    assert set(HPARAM_TYPES) == set(HPARAMS)


@pytest.mark.parametrize("store", ["sqlite", "file"])
def test_mlflow_logger_keeps_one_run_per_trial_across_a_restore(tmp_path, monkeypatch, store):
    from mlflow import MlflowClient
    from ray import cloudpickle

    from raysearch.searching.ray_compat import MLflowTrialLogger
    from raysearch.searching.tracking import open_mlflow

    if store == "file":  # a local file store: MLflow 3 serves one only when this is set
        monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}" if store == "sqlite" else f"file://{tmp_path / 'mlruns'}"
    open_mlflow(uri, "run")
    student = {"arm": "student-4", "stage": "student", "leads": "4", "alpha": 0.5, "sim": "l1", "lr": 1e-3}
    baseline = {"arm": "baseline-4", "stage": "baseline", "leads": "4", "lr": 2e-3}
    logger = MLflowTrialLogger(uri, experiment_name="run")
    logger.setup()
    trials = [_Trial(tmp_path / "s1", student), _Trial(tmp_path / "b1", baseline)]
    for trial in trials:
        logger.log_trial_start(trial)
        for epoch in (1, 2):
            result = {METRIC: 0.5 + epoch / 10, "training_iteration": epoch, "config": trial.config}
            logger.log_trial_result(epoch, trial, result)
    logger.log_trial_end(trials[1])

    # --resume: Tune unpickles its callbacks (cloudpickle: the mlflow module they hold goes by
    # name) and restores the unfinished trial as a new object
    logger = cloudpickle.loads(cloudpickle.dumps(logger))
    logger.setup()
    restored = _Trial(tmp_path / "s1", student)
    logger.log_trial_start(restored)
    logger.log_trial_result(3, restored, {METRIC: 0.9, "training_iteration": 3, "config": student})
    logger.log_trial_end(restored)

    runs = {r.data.tags["trial_id"]: r for r in mlflow_runs(uri)}
    assert sorted(runs) == ["b1", "s1"]  # one run per trial, the restored one included
    s1 = runs["s1"]
    assert s1.info.run_name == "student-4-s1" and s1.info.status == "FINISHED"
    assert s1.data.tags["arm"] == "student-4" and s1.data.tags["stage"] == "student"
    assert s1.data.params["alpha"] == "0.5" and s1.data.params["sim"] == "l1"
    history = MlflowClient(uri).get_metric_history(s1.info.run_id, METRIC)
    assert [(m.step, round(m.value, 3)) for m in history] == [(1, 0.6), (2, 0.7), (3, 0.9)]
    assert not any(k.startswith("config") for k in s1.data.metrics)  # parameters are not metrics
    assert "alpha" not in runs["b1"].data.params and runs["b1"].info.status == "FINISHED"


def test_mlflow_stores_that_cannot_serve_are_one_line_errors(tmp_path, monkeypatch):
    import sys

    from raysearch.errors import UserError
    from raysearch.searching.tracking import open_mlflow

    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "5")  # the user's, for the trials' logging
    (tmp_path / "a-file").write_text("x")
    for uri, expected in (
        (f"file://{tmp_path / 'mlruns'}", "MLFLOW_ALLOW_FILE_STORE=true"),
        (f"sqlite:///{tmp_path / 'a-file' / 'mlflow.db'}", "--mlflow sqlite:///"),
        ("http://127.0.0.1:9", "--mlflow http://127.0.0.1:9: "),  # nothing listens on port 9
    ):
        with pytest.raises(UserError, match=expected) as refused:
            open_mlflow(uri, "run")
        assert "\n" not in str(refused.value)
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "5"  # the check's quick settings were its own
    monkeypatch.setitem(sys.modules, "mlflow", None)  # not installed
    with pytest.raises(UserError, match=r"pip install 'raysearch\[mlflow\]'"):
        open_mlflow(f"sqlite:///{tmp_path / 'mlflow.db'}", "run")
