"""TensorBoard's HParams experiment of a RUN_DIR: the searched parameters first, metrics by name."""

from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.plugins.hparams import plugin_data_pb2

from raysearch.searching.tracking import hparams_experiment


def test_the_searched_parameters_come_first_and_metrics_have_plain_names(tmp_path):
    hparams_experiment(str(tmp_path), ("val_macro_auc", "train_loss"))
    (path,) = tmp_path.glob("events.out.tfevents.*")
    found = [
        plugin_data_pb2.HParamsPluginData.FromString(v.metadata.plugin_data.content).experiment
        for event in EventFileLoader(str(path)).Load()
        for v in event.summary.value
        if v.tag == "_hparams_/experiment"
    ]
    (experiment,) = found
    # TensorBoard lists `differs` first, then by name, and ticks the first five: the four searched
    # ones and the arm (docs/img/tensorboard-hparams.png)
    shown = sorted(experiment.hparam_infos, key=lambda h: (not h.differs, h.name))
    assert [h.name for h in shown][:5] == ["alpha", "embedding_size", "lr", "sim", "arm"]
    assert [m.name.tag for m in experiment.metric_infos] == ["val_macro_auc", "train_loss"]
    hparams_experiment(str(tmp_path), ("val_macro_auc",))  # a resume writes nothing more
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 1
