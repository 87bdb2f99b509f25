"""The two tests of a gain: a paired bootstrap over test records (test-record noise) and Welch's
t-test over seeds (retraining noise); a real gain passes both.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from raysearch.training.metrics import macro_auc, resamples, usable


def paired_bootstrap(
    y_true: np.ndarray,
    score_a: np.ndarray,
    score_b: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """Macro-AUC gain a - b with a paired bootstrap CI and a two-sided p-value.

    p is twice the smaller tail of the bootstrap distribution of the gain around 0 (clipped to 1);
    identical predictions give a gain of exactly 0 and p = 1.
    """
    gain = macro_auc(y_true, score_a) - macro_auc(y_true, score_b)
    diffs = np.array(
        [
            roc_auc_score(y_true[i], score_a[i], average="macro")
            - roc_auc_score(y_true[i], score_b[i], average="macro")
            for i in resamples(len(y_true), n_boot, seed)
            if usable(y_true[i])
        ]
    )
    if len(diffs) == 0:
        return {"gain": float(gain), "ci": [float("nan")] * 2, "p_value": float("nan"), "n_boot": 0}
    ci, p = two_sided(diffs, level)
    return {"gain": float(gain), "ci": ci, "p_value": p, "n_boot": int(len(diffs))}


def two_sided(diffs: np.ndarray, level: float = 0.95) -> tuple[list[float], float]:
    """A bootstrap distribution of a difference: its percentile CI and a two-sided p, twice the
    smaller tail around 0 (clipped to 1; 1 when every resample gives exactly 0)."""
    lo, hi = np.percentile(diffs, [50 * (1 - level), 50 * (1 + level)])
    p = 1.0 if np.all(diffs == 0) else float(min(1.0, 2 * min((diffs <= 0).mean(), (diffs >= 0).mean())))
    return [float(lo), float(hi)], p


def seed_welch(a: list[float], b: list[float], level: float = 0.95) -> dict:
    """Difference of the means of two arms' per-seed scores (a - b) with Welch's t-test (SciPy):
    its CI and two-sided p-value say whether retraining could explain the difference.

    It measures training noise only (every seed is scored on the same test records), as the
    paired bootstrap measures test-record noise only; a real gain should pass both.
    """
    from scipy.stats import ttest_ind

    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"seed_welch needs at least 2 seeds per arm, got {len(a)} and {len(b)}")
    res = ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(level)
    return {
        "diff": float(np.mean(a) - np.mean(b)),
        "ci": [float(ci.low), float(ci.high)],
        "p_value": float(res.pvalue),
        "df": float(res.df),
    }
