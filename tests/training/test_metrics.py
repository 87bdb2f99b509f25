"""Macro-AUC, bootstrap CI and the paired bootstrap."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from raysearch.reporting.statistics import paired_bootstrap
from raysearch.training.metrics import bootstrap_ci, macro_auc, per_class_auc


def _fake(n, seed=0, noise=1.0):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 5)) < 0.3).astype(np.float32)
    return y, y + noise * rng.normal(size=y.shape)


def test_macro_auc_is_sklearns():
    y, s = _fake(300)
    assert macro_auc(y, s) == roc_auc_score(y, s, average="macro")
    y[:, 2] = 0  # a class without positives is left out, not a crash
    assert np.isnan(per_class_auc(y, s)[2])
    assert macro_auc(y, s) == np.mean([roc_auc_score(y[:, k], s[:, k]) for k in (0, 1, 3, 4)])


@pytest.mark.slow  # thousands of resamples
def test_bootstrap_ci_brackets_the_estimate_and_shrinks():
    y, s = _fake(400)
    lo, hi = bootstrap_ci(y, s, n_boot=300)
    assert lo < macro_auc(y, s) < hi
    y2, s2 = _fake(4000)
    lo2, hi2 = bootstrap_ci(y2, s2, n_boot=300)
    assert hi2 - lo2 < (hi - lo) / 2


def test_paired_bootstrap():
    y, a = _fake(500, noise=0.8)
    _, b = _fake(500, seed=1, noise=1.2)
    out = paired_bootstrap(y, a, b, n_boot=300)
    assert out["ci"][0] < out["gain"] < out["ci"][1] and out["gain"] > 0
    same = paired_bootstrap(y, a, a.copy(), n_boot=200)
    assert same["gain"] == 0.0 and same["p_value"] == 1.0 and same["ci"] == [0.0, 0.0]


@pytest.mark.slow  # thousands of resamples
def test_paired_bootstrap_ci_contains_the_gain_and_shrinks_with_records():
    widths = []
    for n in (300, 3000):
        y, a = _fake(n, noise=0.9)
        _, b = _fake(n, seed=1, noise=1.0)
        out = paired_bootstrap(y, a, b, n_boot=300)
        assert out["ci"][0] <= out["gain"] <= out["ci"][1]
        widths.append(out["ci"][1] - out["ci"][0])
    assert widths[1] < widths[0] / 2  # ~1/sqrt(n): ten times the records, about a third the width


def test_bootstrap_of_too_few_records_is_nan_not_a_crash():
    y = np.array([[1.0], [0.0], [0.0]])  # most resamples of 3 records miss one label value
    s = np.array([[0.9], [0.1], [0.2]])
    lo, hi = bootstrap_ci(y[:2] * 0 + 1, s[:2], n_boot=20)  # one label value only: never usable
    assert np.isnan(lo) and np.isnan(hi)
    out = paired_bootstrap(y[:2] * 0 + 1, s[:2], s[:2], n_boot=20)
    assert out["n_boot"] == 0 and np.isnan(out["p_value"])


def test_seed_welch():
    from raysearch.reporting.statistics import seed_welch

    same = seed_welch([0.90, 0.91, 0.92], [0.90, 0.91, 0.92])
    assert same["diff"] == 0.0 and same["p_value"] == 1.0 and same["ci"][0] < 0 < same["ci"][1]
    rng = np.random.default_rng(0)
    a, b = 0.91 + 0.001 * rng.normal(size=5), 0.90 + 0.001 * rng.normal(size=5)
    apart = seed_welch(list(a), list(b))
    assert apart["diff"] == np.mean(a) - np.mean(b)
    assert 0 < apart["ci"][0] < apart["diff"] < apart["ci"][1] and apart["p_value"] < 0.001
    close = seed_welch(list(a), list(a - 0.0005))  # a shift well inside the seeds' spread
    assert close["ci"][0] < 0 < close["ci"][1] and close["p_value"] > 0.05
    with pytest.raises(ValueError, match="at least 2 seeds"):
        seed_welch([0.9], [0.8, 0.85])
