"""Exported models (ONNX through onnxruntime, .pt2 through torch.export, TorchScript through
torch.jit) compute what the PyTorch model computes, for any record length and number of records,
and carry what a device needs to feed them."""

import json

import numpy as np
import onnx
import pytest

from raysearch.deploy.export import export_model
from raysearch.deploy.load import load_model
from raysearch.deploy.model import FolderModel
from raysearch.errors import UserError

NAN = float("nan")
SUFFIX = {"onnx": "onnx", "pt2": "pt2", "torchscript": "pt"}  # each format and its file's suffix
META = np.array([[60, 0, NAN, 80], [35, 1, 165, NAN], [NAN, NAN, NAN, NAN], [300, 1, 6, 5000]], np.float32)


@pytest.fixture(scope="module")
def exported(trained_models, tmp_path_factory):
    out = tmp_path_factory.mktemp("exported")
    return {
        (name, fmt): export_model(folder, fmt, out / f"{name}.{SUFFIX[fmt]}")
        for name, folder in trained_models.items()
        for fmt in SUFFIX
    }


@pytest.mark.parametrize("name", ["teacher", "student-2", "baseline-3"])
@pytest.mark.parametrize("fmt", list(SUFFIX))
def test_export_agrees_with_pytorch_at_any_length(trained_models, exported, name, fmt):
    reference = load_model(trained_models[name], precision="fp32")
    model = load_model(exported[name, fmt])
    assert model.leads == reference.leads and model.window == reference.window
    rng = np.random.default_rng(0)
    # one window, one sample more, a stride that does not divide, 10 s, and a long record
    for samples in (max(model.window, 1), model.window + 1, 777, 1000, 3001):
        signals = rng.normal(0, 0.3, (4, len(model.leads), samples)).astype(np.float32)
        want = reference.predict(signals, META)
        got = model.predict(signals, META)
        assert got.shape == (4, 5)
        assert np.abs(got - want).max() <= 1e-4, (samples, np.abs(got - want).max())
        one = model.predict(signals[:1], META[:1])  # one record: a batch size the example did not have
        assert np.abs(one - want[:1]).max() <= 1e-4, (samples, np.abs(one - want[:1]).max())


def test_the_file_carries_what_a_device_needs(trained_models, exported):
    metrics = json.loads((trained_models["student-2"] / "metrics.json").read_text())
    for fmt in SUFFIX:
        info = load_model(exported["student-2", fmt]).info
        assert info["leads"] == ["I", "II"] and info["sampling_rate"] == 100 and info["window"] == 250
        assert info["stride"] == 100 and info["classes"] == ["NORM", "MI", "STTC", "CD", "HYP"]
        assert info["stage"] == "student" and info["config"]["leads"] == "2"
        assert info["val_macro_auc"] == metrics["val_macro_auc"]
        assert info["test_macro_auc"] == metrics["test_macro_auc"]
        # the calibration runs inside the graph; the thresholds travel with it: the same labels
        assert info["operating_point"] == metrics["operating_point"]
        model, reference = (
            load_model(exported["student-2", fmt]),
            load_model(trained_models["student-2"], precision="fp32"),
        )
        signals = np.random.default_rng(1).normal(0, 0.3, (6, 2, 1000)).astype(np.float32)
        got = model.predict(signals, np.full((6, 4), np.nan, np.float32))
        want = reference.predict(signals, np.full((6, 4), np.nan, np.float32))
        near = np.abs(want - np.array(metrics["operating_point"]["thresholds"])) < 1e-4
        assert np.array_equal(model.labels(got)[~near], reference.labels(want)[~near])
    props = {p.key: p.value for p in onnx.load(exported["student-2", "onnx"]).metadata_props}
    assert json.loads(props["leads"]) == ["I", "II"] and json.loads(props["sampling_rate"]) == 100
    graph = onnx.load(exported["student-2", "onnx"]).graph
    assert [i.name for i in graph.input] == ["signals", "metadata"]
    samples = graph.input[0].type.tensor_type.shape.dim[2]
    assert samples.dim_param and not samples.dim_value  # any record length


def test_pytorch_keeps_the_training_precision_unless_told(trained_models):
    model = load_model(trained_models["student-2"])
    assert isinstance(model, FolderModel) and model.config.precision == "bf16"
    assert load_model(trained_models["student-2"], precision="fp32").config.precision == "fp32"


def test_bad_requests_are_one_line_errors(trained_models, exported, tmp_path):
    with pytest.raises(UserError, match="format 'tflite'"):
        export_model(trained_models["teacher"], "tflite", tmp_path / "m.tflite")
    with pytest.raises(UserError, match="no such directory"):
        export_model(trained_models["teacher"], "onnx", tmp_path / "nowhere" / "m.onnx")
    with pytest.raises(UserError, match="expected a raysearch model folder"):
        export_model(tmp_path, "onnx", tmp_path / "m.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(UserError, match="not a readable ONNX model"):
        load_model(tmp_path / "junk.onnx")
    with pytest.raises(UserError, match="no such file"):
        load_model(tmp_path / "absent.onnx")
    model = load_model(exported["student-2", "onnx"])
    with pytest.raises(UserError, match="at least one window of 250 samples"):
        model.predict(np.zeros((1, 2, 249), np.float32))
    with pytest.raises(UserError, match=r"2 leads \(I,II\)"):
        model.predict(np.zeros((1, 3, 500), np.float32))
    assert not list(tmp_path.glob("*.tmp"))  # a failed export leaves nothing half-written


def test_a_run_dir_with_several_models_asks_which(trained_models):
    root = trained_models["teacher"].parent
    run = root / "run"
    (run / "best").mkdir(parents=True, exist_ok=True)
    for name in ("student-2", "baseline-3"):
        link = run / "best" / name
        if not link.exists():
            link.symlink_to(trained_models[name])
    with pytest.raises(UserError, match=r"holds 2 models \(best/baseline-3, best/student-2\): name one"):
        load_model(run)
    assert load_model(run / "best" / "student-2").leads == ("I", "II")


def test_export_never_destroys_a_model_or_a_file(trained_models, tmp_path):
    model = trained_models["baseline-3"]
    before = {p.name: p.read_bytes() for p in model.iterdir()}
    for out in (model / "model.pt", model / "m.onnx", tmp_path / "model.pt"):
        with pytest.raises(UserError, match="inside a model folder|expected a path outside"):
            export_model(model, "torchscript", out)
    assert {p.name: p.read_bytes() for p in model.iterdir()} == before
    out = tmp_path / "m.pt"
    out.write_text("mine")
    with pytest.raises(UserError, match="m.pt: exists; pass --force to replace it"):
        export_model(model, "torchscript", out)
    assert out.read_text() == "mine"
    export_model(model, "torchscript", out, force=True)
    assert load_model(out).leads == ("I", "II", "V2")
    readonly = tmp_path / "ro"
    readonly.mkdir()
    import subprocess

    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(readonly)]).returncode == 0:
        try:
            with pytest.raises(UserError, match=r"ro/m.onnx: cannot be written \(Read-only file system\)"):
                export_model(model, "onnx", readonly / "m.onnx")
        finally:
            subprocess.run(["umount", str(readonly)])


def test_files_that_pretend_to_be_torchscript(trained_models, exported, tmp_path):
    import zipfile

    fake = tmp_path / "fake.pt"
    with zipfile.ZipFile(fake, "w") as z:
        z.writestr("archive/data.pkl", b"not a model")
    with pytest.raises(UserError, match="fake.pt: a zip file without raysearch's raysearch.json"):
        load_model(fake)
    real = exported[("teacher", "torchscript")].read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(real[: len(real) // 2])
    with pytest.raises(UserError, match="cut.pt: a truncated or damaged TorchScript"):
        load_model(cut)


def test_files_that_pretend_to_be_pt2(exported, tmp_path):
    real = exported[("teacher", "pt2")].read_bytes()
    cut = tmp_path / "cut.pt2"
    cut.write_bytes(real[: len(real) // 2])
    with pytest.raises(UserError, match="cut.pt2: a truncated or damaged .pt2"):
        load_model(cut)
    assert load_model(exported[("teacher", "pt2")]).format == "pt2"
    assert load_model(exported[("teacher", "torchscript")]).format == "torchscript"
