"""Where trials are compared besides the console: TensorBoard's HParams experiment of a RUN_DIR
(one, listing every arm's parameters) and an MLflow tracking store checked before anything runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

from raysearch.errors import UserError, first_line

# The parameters trials are compared by in TensorBoard's HParams dashboard, in its column order: the
# searched ones first, then which arm a trial belongs to.
HPARAMS = ("alpha", "sim", "embedding_size", "lr", "arm", "leads", "pseudo", "stage")
SEARCHED_HPARAMS = HPARAMS[:4]


def plain(value):
    """A value TensorBoard's HParams accept: Python scalars, not numpy ones."""
    return value.item() if hasattr(value, "item") else value


# One value of each HParam's type: the experiment below lists every arm's parameters by them.
HPARAM_TYPES = {
    "alpha": 1.0,
    "sim": "l1",
    "embedding_size": 128,
    "lr": 1e-3,
    "arm": "student-4",
    "leads": "4",
    "pseudo": True,
    "stage": "student",
}


def hparams_experiment(logdir: str, metrics: tuple[str, ...]) -> None:
    """Write RUN_DIR's one HParams experiment (once): every parameter any arm has, whatever the
    trial TensorBoard happens to read first, and `metrics` by the names HParamsLogger writes them.

    TensorBoard lists parameters by name, those marked `differs` first, and ticks the first five:
    the searched ones are marked, so alpha, embedding_size, lr and sim come first and are shown."""
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
    from tensorboardX import FileWriter
    from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata

    if any(Path(logdir).glob("events.out.tfevents.*")):
        return  # a resumed search: written by its first invocation
    kinds = {
        bool: "DATA_TYPE_BOOL",
        str: "DATA_TYPE_STRING",
        int: "DATA_TYPE_FLOAT64",
        float: "DATA_TYPE_FLOAT64",
    }
    experiment = api_pb2.Experiment(
        hparam_infos=[
            api_pb2.HParamInfo(name=k, type=kinds[type(v)], differs=k in SEARCHED_HPARAMS)
            for k, v in HPARAM_TYPES.items()
        ],
        metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=m)) for m in metrics],
    )
    content = plugin_data_pb2.HParamsPluginData(experiment=experiment, version=0).SerializeToString()
    metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="hparams", content=content))
    writer = FileWriter(logdir)
    writer.add_summary(Summary(value=[Summary.Value(tag="_hparams_/experiment", metadata=metadata)]))
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
        if "MLFLOW_ALLOW_FILE_STORE" in str(e):  # MLflow 3's paragraph, said in one line
            reason = (
                "MLflow refuses a file store unless MLFLOW_ALLOW_FILE_STORE=true is set; a database "
                "store (sqlite:///PATH/mlflow.db) needs nothing"
            )
        raise UserError(f"--mlflow {tracking_uri}: {reason[:300]}") from None
