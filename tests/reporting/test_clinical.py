"""The report's operating point: test figures at thresholds fitted on validation, their CIs, and
the paired F1 difference of two arms."""

import numpy as np
import pytest

from raysearch.reporting.clinical import ece, measures, operating_figures, paired_f1
from raysearch.training.operating import OperatingPoint


def test_measures_count_what_was_called():
    y = np.array([[1], [1], [0], [0], [0]])
    called = np.array([[True], [False], [True], [False], [False]])
    m = measures(y, called)
    assert m["sensitivity"][0] == 0.5 and m["specificity"][0] == pytest.approx(2 / 3)
    assert m["ppv"][0] == 0.5 and m["npv"][0] == pytest.approx(2 / 3) and m["f1"][0] == 0.5


def test_calibration_error_falls_when_probabilities_match_rates():
    rng = np.random.default_rng(0)
    p = rng.random((5000, 1))
    y = (rng.random((5000, 1)) < p).astype(float)
    assert ece(y, p)[0] < 0.03 and ece(y, np.clip(p * 0.3 + 0.7, 0, 1))[0] > 0.2


def test_figures_have_cis_around_their_value_and_a_paired_difference():
    rng = np.random.default_rng(1)
    y = (rng.random((600, 2)) < 0.3).astype(float)
    p = np.clip(0.6 * y + rng.normal(0.2, 0.15, y.shape), 0.001, 0.999)
    point = OperatingPoint(["A", "B"], [1.0, 2.0], [0.5, 0.5], "f1")
    figures = operating_figures(point, y, p, n_boot=200)
    for name in ("A", "B"):
        for measure in ("sensitivity", "specificity", "f1", "ece_before", "ece_after", "brier_after"):
            value, lo, hi = figures["per_class"][name][measure]
            assert lo <= value <= hi, (name, measure)
    assert len(figures["reliability"]["before"]) == 2
    called = point.labels(p)
    same = paired_f1(y, called, called.copy(), n_boot=100)
    assert same["diff"] == 0 and same["p_value"] == 1.0
    worse = paired_f1(y, called, np.zeros_like(called), n_boot=100)
    assert worse["diff"] > 0 and worse["ci"][0] > 0
