"""A trained model on new ECGs: raw mV and raw metadata in, the same probabilities as training's
own evaluation out."""

import numpy as np
import pytest

from raysearch.data.ptbxl import load_ptbxl
from raysearch.deploy.model import open_folder as load_model
from raysearch.errors import UserError
from raysearch.training.batches import Signals
from raysearch.training.config import TrainConfig
from raysearch.training.evaluation import final_metrics, score_records, write_run
from raysearch.training.stage import train_stage


@pytest.fixture(scope="module")
def trained(tmp_path_factory, real_ptbxl):
    data = load_ptbxl(real_ptbxl, progress=False)
    cfg = TrainConfig(stage="baseline", leads="3", epochs=1, width=8, depth=2, embedding_size=16, n_boot=20)
    result = train_stage(cfg, data)
    out = tmp_path_factory.mktemp("run")
    write_run(out, result, *final_metrics(result, data))
    return data, result, out


def test_predict_on_raw_millivolts_matches_training_evaluation(trained):
    data, result, out = trained
    model = load_model(out)
    assert model.leads == ("I", "II", "V2") and model.sampling_rate == 100 and model.window == 250
    rows = data.split("val")
    mv = (data.signals[rows].astype(np.float32) - data.baseline[rows][:, :, None]) / data.gain[rows][
        :, :, None
    ]
    got = model.predict(mv[:, list(result.cfg.lead_indices)], data.raw_meta[rows])
    want = score_records(result.net, Signals(data, result.device), rows, result.cfg)
    # what evaluation scored, calibrated by the operating point fitted on validation (metrics.json)
    assert model.operating is not None and model.operating.rule == "f1"
    assert np.abs(got - model.operating.calibrate(want)).max() <= 1e-5
    saved = np.load(out / "predictions_val.npz")
    assert np.abs(got - model.operating.calibrate(saved["y_score"])).max() <= 1e-5
    labels = model.labels(got)
    assert labels.shape == got.shape and np.array_equal(labels, got >= np.array(model.operating.thresholds))


def test_predict_refuses_what_it_cannot_read(trained):
    model = load_model(trained[2])
    with pytest.raises(UserError, match="expected \\(records, 3 leads"):
        model.predict(np.zeros((2, 12, 1000)))
    with pytest.raises(UserError, match="expected at least one window of 250"):
        model.predict(np.zeros((2, 3, 100)))
    with pytest.raises(UserError, match="metadata of shape"):
        model.predict(np.zeros((2, 3, 1000)), np.zeros((2, 3)))
    assert model.predict(np.zeros((2, 3, 1000))).shape == (2, 5)  # metadata missing: all NaN
    signals = np.zeros((3, 3, 1000))
    signals[1, 2, 5], signals[2, 0, 7] = np.nan, np.inf
    with pytest.raises(UserError, match=r"signals of record\(s\) 1, 2 \(2 of 3\) hold missing or non-finite"):
        model.predict(signals)
