"""The operating point fitted on validation: temperatures that undo a known miscalibration, and
thresholds by each rule."""

import numpy as np
import pytest

from raysearch.errors import UserError
from raysearch.training.operating import OperatingPoint, check_rule, fit_operating_point, logit

CLASSES = ["A", "B"]


def _overconfident(n: int, temperature: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from calibrated probabilities, then the logits sharpened by `temperature`."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, (n, 2))
    y = (rng.random((n, 2)) < 1 / (1 + np.exp(-z))).astype(float)
    return y, 1 / (1 + np.exp(-z * temperature))


def test_temperatures_undo_a_known_overconfidence_and_keep_the_ranking():
    y, p = _overconfident(20000, 3.0)
    point = fit_operating_point(y, p, "f1", CLASSES)
    assert point.temperatures == pytest.approx([3.0, 3.0], rel=0.08)
    calibrated = point.calibrate(p)
    from sklearn.metrics import roc_auc_score

    for k in range(2):  # a monotone map: the ranking, so the AUC, is unchanged
        assert roc_auc_score(y[:, k], calibrated[:, k]) == pytest.approx(
            roc_auc_score(y[:, k], p[:, k]), abs=1e-4
        )
    assert np.abs(logit(calibrated) * 3.0 - logit(p)).max() < 0.3


def test_each_rule_picks_its_threshold():
    y, p = _overconfident(4000, 1.0, seed=1)
    for rule in ("f1", "youden", "sensitivity:0.9"):
        point = fit_operating_point(y, p, rule, CLASSES)
        calibrated, labels = point.calibrate(p), point.labels(p)
        assert np.array_equal(labels, calibrated >= np.array(point.thresholds))
    sensitive = fit_operating_point(y, p, "sensitivity:0.9", CLASSES)
    called = sensitive.labels(p)
    for k in range(2):
        sens = (called[:, k] & (y[:, k] == 1)).sum() / y[:, k].sum()
        assert 0.9 <= sens < 0.92  # the highest threshold that reaches it, not a lower one
    f1 = fit_operating_point(y, p, "f1", CLASSES)
    youden = fit_operating_point(y, p, "youden", CLASSES)
    assert f1.thresholds != youden.thresholds


def test_rules_are_checked_and_points_travel_as_json():
    for bad in ("f2", "sensitivity:1.5", "sensitivity:x", ""):
        with pytest.raises(UserError, match="expected f1, youden or sensitivity:X"):
            check_rule(bad)
    point = OperatingPoint(CLASSES, [1.5, 0.8], [0.3, 0.6], "youden")
    assert OperatingPoint.from_dict(point.to_dict()) == point


def test_a_models_point_is_fitted_before_the_test_fold_is_read(real_ptbxl, monkeypatch):
    from raysearch.data.ptbxl import PTBXL, load_ptbxl
    from raysearch.training import evaluation
    from raysearch.training.config import TrainConfig
    from raysearch.training.stage import train_stage

    data = load_ptbxl(real_ptbxl, progress=False)
    cfg = TrainConfig(stage="baseline", leads="2", epochs=1, width=8, depth=2, embedding_size=16, n_boot=10)
    result = train_stage(cfg.resolved(), data, progress=False)
    events = []
    real_split, real_fit = PTBXL.split, evaluation.fit_operating_point
    monkeypatch.setattr(PTBXL, "split", lambda self, name: events.append(name) or real_split(self, name))
    monkeypatch.setattr(
        evaluation, "fit_operating_point", lambda *a, **k: events.append("fit") or real_fit(*a, **k)
    )
    metrics, _ = evaluation.final_metrics(result, data, rule="youden")
    assert events.index("fit") < events.index("test") and "val" in events[: events.index("fit")]
    assert (
        metrics["operating_point"]["rule"] == "youden" and len(metrics["operating_point"]["thresholds"]) == 5
    )
