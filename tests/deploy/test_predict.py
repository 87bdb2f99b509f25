"""`raysearch predict` and `raysearch export` as a user runs them: PTB-XL's own records give back
the run's own test predictions, exported files agree with PyTorch, faster records are resampled,
and a bad record is listed while the others are written."""

import json

import numpy as np
import pandas as pd
import pytest
import wfdb
from conftest import run_cli, run_main
from scipy.signal import resample_poly

from raysearch.data.schema import CLASSES
from raysearch.deploy.options import PredictOptions
from raysearch.deploy.predict import predict_records
from raysearch.errors import UserError
from raysearch.training.operating import OperatingPoint


def predictions(path) -> pd.DataFrame:
    return pd.read_csv(path).set_index("ecg_id")


@pytest.mark.parametrize("name", ["student-2", "baseline-3"])
def test_predict_reproduces_the_runs_own_test_predictions(trained_models, real_ptbxl, tmp_path, name):
    out = tmp_path / "p.csv"
    done = run_main(
        "predict", str(trained_models[name]), "--data", str(real_ptbxl), "--folds", "10", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    saved = np.load(trained_models[name] / "predictions_test.npz")
    table = predictions(out).loc[saved["ecg_id"]]
    got = table[list(CLASSES)].to_numpy()
    # the run's own test scores, calibrated by the operating point fitted on validation
    point = OperatingPoint.from_dict(
        json.loads((trained_models[name] / "metrics.json").read_text())["operating_point"]
    )
    assert np.abs(got - point.calibrate(saved["y_score"])).max() <= 1e-5
    labels = [set(s.split(";")) - {""} for s in table["labels"].fillna("")]
    clear = np.abs(got - np.array(point.thresholds)) > 1e-5  # the CSV's 7 digits decide the rest
    for row, probs, sure in zip(labels, got, clear, strict=True):
        for c, p, t, s in zip(CLASSES, probs, point.thresholds, sure, strict=True):
            assert not s or (c in row) == (p >= t)
    assert "records predicted to" in done.stderr and "NORM" in done.stdout.splitlines()[0]


@pytest.mark.slow
def test_exports_predict_like_pytorch(trained_models, real_ptbxl, tmp_path):
    common = ["--data", str(real_ptbxl), "--folds", "10"]
    ref = tmp_path / "fp32.csv"
    done = run_cli(
        "predict", str(trained_models["student-2"]), *common, "--precision", "fp32", "--out", str(ref)
    )
    assert done.returncode == 0, done.stderr
    for fmt, file in (("onnx", "s2.onnx"), ("torchscript", "s2.pt")):
        done = run_cli(
            "export", str(trained_models["student-2"]), "--format", fmt, "--out", str(tmp_path / file)
        )
        assert done.returncode == 0, done.stderr
        assert "student on leads I,II at 100 Hz, window 250 samples; val macro-AUC" in done.stdout
        out = tmp_path / f"{fmt}.csv"
        done = run_cli("predict", str(tmp_path / file), *common, "--out", str(out))
        assert done.returncode == 0, done.stderr
        diff = predictions(out)[list(CLASSES)] - predictions(ref)[list(CLASSES)]
        assert np.abs(diff.to_numpy()).max() <= 1e-4


def test_500_hz_records_give_the_100_hz_probabilities(trained_models, real_ptbxl, tmp_path):
    db = pd.read_csv(real_ptbxl / "ptbxl_database.csv")
    rows = db[db["strat_fold"] == 10].head(8)
    csv = ["record,age,sex,height,weight"]
    slow, fast = [], []
    for r in rows.itertuples():
        src = wfdb.rdrecord(str(real_ptbxl / r.filename_lr))
        name = f"fast{r.ecg_id}"
        signal = resample_poly(src.p_signal, 5, 1, axis=0)  # 500 Hz made from the real 100 Hz record
        wfdb.wrsamp(name, 500, src.units, src.sig_name, signal, fmt=["16"] * 12, write_dir=str(tmp_path))
        slow.append(str(real_ptbxl / r.filename_lr))
        fast.append(str(tmp_path / name))
        meta = [r.age, r.sex, r.height, r.weight]
        csv += [
            ",".join([n] + ["" if pd.isna(v) else str(v) for v in meta])
            for n in (name, slow[-1].split("/")[-1])
        ]
    (tmp_path / "meta.csv").write_text("\n".join(csv) + "\n")
    for model in (trained_models["student-2"], trained_models["teacher"]):
        got = [
            predict_records(
                PredictOptions(model=str(model), records=records, metadata=str(tmp_path / "meta.csv")), False
            )
            for records in (slow, fast)
        ]
        assert not got[0]["errors"] and not got[1]["errors"]
        a, b = (np.array([[r[c] for c in CLASSES] for r in g["rows"]]) for g in got)
        assert np.abs(a - b).max() <= 0.02


def test_a_bad_record_is_listed_and_the_others_written(trained_models, real_ptbxl, tmp_path):
    src = wfdb.rdrecord(str(real_ptbxl / "records100/00000/00001_lr"))
    wfdb.wrsamp(
        "limb",
        100,
        ["mV"] * 2,
        ["I", "III"],
        src.p_signal[:, [0, 2]],
        fmt=["16"] * 2,
        write_dir=str(tmp_path),
    )
    wfdb.wrsamp(
        "short", 100, ["mV"] * 2, ["I", "II"], src.p_signal[:200, :2], fmt=["16"] * 2, write_dir=str(tmp_path)
    )
    good = str(real_ptbxl / "records100/00000/00001_lr")
    unlisted = str(real_ptbxl / "records100/00000/00002_lr")
    (tmp_path / "meta.csv").write_text("record,age,sex\n00001_lr,56,1\nlimb,60,0\nshort,60,0\n")
    records = [good, str(tmp_path / "limb"), str(tmp_path / "short"), unlisted, str(tmp_path / "absent")]
    out = tmp_path / "p.jsonl"
    model = trained_models["student-2"]
    done = run_main(
        "predict", str(model), *records, "--metadata", str(tmp_path / "meta.csv"), "--out", str(out)
    )
    assert done.returncode == 1
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["record"] for r in rows] == records
    assert set(CLASSES) <= set(rows[0]) and "error" not in rows[0]
    assert "limb: no lead II (it has I, III); the model reads I, II" in rows[1]["error"]
    assert "short: 200 samples at 100 Hz; expected at least one window of 250 samples" in rows[2]["error"]
    assert "00002_lr: not in" in rows[3]["error"] and "meta.csv" in rows[3]["error"]
    assert "absent: no header" in rows[4]["error"]
    errors = [line for line in done.stderr.splitlines() if line.startswith("raysearch: error:")]
    assert len(errors) == 4 and "Traceback" not in done.stderr
    assert "1 of 5 records predicted" in done.stderr


def test_records_without_metadata_are_scored_as_unknown_and_it_is_said_once(trained_models, real_ptbxl):
    import warnings

    from raysearch.deploy.load import load_model

    records = [str(real_ptbxl / f"records100/00000/0000{i}_lr") for i in (1, 2, 3)]
    done = run_main("predict", str(trained_models["student-2"]), *records)
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if "no metadata" in line]
    assert len(said) == 1 and "treated as unknown for every record" in said[0] and "--metadata" in said[0]
    with_data = run_main(
        "predict", str(trained_models["student-2"]), "--data", str(real_ptbxl), "--folds", "10"
    )
    assert "no metadata" not in with_data.stderr  # PTB-XL's database gives it
    model = load_model(trained_models["student-2"])
    signals = np.zeros((2, 2, 1000), np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.predict(signals)
        model.predict(signals, np.full((2, 4), np.nan, np.float32))  # unknown, and said so: silent
    assert [str(w.message)[:12] for w in caught] == ["no metadata:"]


def test_requests_predict_cannot_serve(trained_models, real_ptbxl, tmp_path):
    model, data = str(trained_models["student-2"]), str(real_ptbxl)
    for options, message in (
        ({}, "nothing to predict"),
        ({"records": ["rec"], "data": data}, "records and --data exclude each other"),
        ({"data": data, "folds": "11"}, "--folds '11': expected folds 1..10"),
        ({"records": ["rec"], "folds": "10"}, "--folds selects PTB-XL folds: it needs --data"),
        (
            {"records": ["rec"], "out": str(tmp_path / "no" / "p.csv")},
            "expected a file in an existing folder",
        ),
        ({"records": ["rec"], "model": str(tmp_path)}, "expected a raysearch model folder"),
    ):
        with pytest.raises(UserError, match=message):
            predict_records(PredictOptions(**{"model": model, **options}), False)
