"""The two-stage training engine on tiny models: learning, frozen classifier, losses, checkpoints."""

import json

import numpy as np
import pytest
import torch
from conftest import run_main

from raysearch import UserError
from raysearch.data.ptbxl import load_ptbxl
from raysearch.training.config import TrainConfig
from raysearch.training.evaluation import final_metrics
from raysearch.training.stage import train_stage

TINY = {"width": 8, "depth": 2, "embedding_size": 16, "batch_size": 32, "n_boot": 100, "lr": 3e-3}


@pytest.fixture(scope="module")
def data(synthetic_ptbxl):
    return load_ptbxl(synthetic_ptbxl, progress=False)


@pytest.fixture(scope="module")
def teacher(data):
    return train_stage(TrainConfig(stage="teacher", epochs=6, **{**TINY, "depth": 3}), data)


def test_teacher_learns(teacher):
    assert teacher.history[-1]["val_macro_auc"] > 0.8
    assert teacher.cfg.arch == "inception"


def test_student_learns_and_classifier_stays_frozen(data, teacher):
    blob = teacher.export()
    frozen = {k: v.clone() for k, v in blob.weights.items() if k.startswith("classifier.")}
    student = train_stage(
        TrainConfig(stage="student", leads="4", epochs=8, alpha=0.5, sim="cosine", **TINY), data, teacher=blob
    )
    assert student.cfg.arch == "resnet1d"
    assert student.history[-1]["val_macro_auc"] > 0.8  # chance is 0.5
    assert student.history[-1]["sim_loss"] > 0
    got = student.net.classifier.state_dict()
    assert frozen and all(torch.equal(got[k.removeprefix("classifier.")], v) for k, v in frozen.items())


def test_baseline_has_its_own_trainable_classifier(data):
    base = train_stage(TrainConfig(stage="baseline", leads="2", epochs=2, **TINY), data)
    assert all(p.requires_grad for p in base.net.parameters())
    assert all(h["sim_loss"] == 0 for h in base.history)


def test_reproducible_and_resumable_on_cpu(data):
    cfg = TrainConfig(stage="baseline", leads="3", epochs=2, precision="fp32", **TINY)
    full = train_stage(cfg, data)
    again = train_stage(cfg, data)
    assert [h["train_loss"] for h in full.history] == [h["train_loss"] for h in again.history]
    saved = {}

    def stop_after_first(metrics, state):
        saved.update(state())
        return True

    stopped = train_stage(cfg, data, on_epoch=stop_after_first)
    assert len(stopped.history) == 1 and saved["epoch"] == 0
    resumed = train_stage(cfg, data, resume=saved)
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in full.history]
    assert resumed.history[-1]["val_macro_auc"] == full.history[-1]["val_macro_auc"]


def test_a_student_needs_a_matching_12_lead_teacher(data, teacher):
    blob = teacher.export()
    with pytest.raises(UserError, match="embedding size 16, but the student asks for 32"):
        train_stage(
            TrainConfig(stage="student", leads="4", epochs=1, **{**TINY, "embedding_size": 32}),
            data,
            teacher=blob,
        )
    base = train_stage(TrainConfig(stage="baseline", leads="4", epochs=1, **TINY), data)
    with pytest.raises(UserError, match="expected a 12-lead teacher"):
        train_stage(TrainConfig(stage="student", leads="4", epochs=1, **TINY), data, teacher=base.export())


def test_final_metrics_read_test_only_at_the_end(data, teacher):
    metrics, preds = final_metrics(teacher, data)
    assert 0 < metrics["test_macro_auc_ci"][0] <= metrics["test_macro_auc"] <= metrics["test_macro_auc_ci"][1]
    assert preds["test"]["y_score"].shape == (len(data.split("test")), 5)


def test_train_cli_writes_run_dir(tmp_path, synthetic_ptbxl):
    common = f"--data {synthetic_ptbxl} --epochs 2 --width 8 --depth 2 --n-boot 50".split()
    student = f"train --leads 4 --teacher {tmp_path / 't'}".split()
    t = run_main("train", "--leads", "12", "--out", str(tmp_path / "t"), "--embedding-size", "16", *common)
    assert t.returncode == 0, t.stderr
    s = run_main(*student, "--out", str(tmp_path / "s"), "--alpha", "0.3", "--sim", "l2", *common)
    assert s.returncode == 0, s.stderr
    metrics = json.loads((tmp_path / "s" / "metrics.json").read_text())
    for key in ("val_macro_auc", "test_macro_auc", "test_macro_auc_ci", "per_class_auc", "classes", "config"):
        assert key in metrics
    assert metrics["config"]["embedding_size"] == 16  # the teacher's size
    assert metrics["config"]["sim"] == "l2"
    for split in ("val", "test"):
        p = np.load(tmp_path / "s" / f"predictions_{split}.npz")
        assert p["y_true"].shape == p["y_score"].shape and p["y_true"].shape[1] == 5 and len(p["ecg_id"])
    bad = run_main(*student, "--out", str(tmp_path / "x"), "--embedding-size", "32", *common)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "embedding size 16" in bad.stderr
    bad = run_main(
        "train", "--leads", "4", "--teacher", str(tmp_path / "s"), "--out", str(tmp_path / "x"), *common
    )
    assert bad.returncode == 2 and "expected a 12-lead teacher" in bad.stderr
