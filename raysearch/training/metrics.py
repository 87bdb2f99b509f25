"""Evaluation metrics: macro-AUC (scikit-learn), per-class AUC, the bootstrap CI of a macro-AUC.

The bootstrap resamples *records* with replacement; a resample in which some class has only one
label value is skipped (AUC is undefined there).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score


def per_class_auc(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """AUC of each column (NaN where a class has a single label value in `y_true`)."""
    out = np.full(y_true.shape[1], np.nan)
    for k in range(y_true.shape[1]):
        if 0 < y_true[:, k].sum() < len(y_true):
            out[k] = roc_auc_score(y_true[:, k], y_score[:, k])
    return out


def macro_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Mean AUC over the classes that have both label values (scikit-learn's macro average)."""
    aucs = per_class_auc(y_true, y_score)
    return float(np.nanmean(aucs)) if np.isfinite(aucs).any() else float("nan")


def resamples(n: int, n_boot: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        yield rng.integers(0, n, size=n)


def usable(y: np.ndarray) -> bool:
    positives = y.sum(axis=0)
    return bool(((positives > 0) & (positives < len(y))).all())


def bootstrap_ci(
    y_true: np.ndarray, y_score: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap CI of the macro-AUC over records; (nan, nan) when no resample has both
    label values in every class (a few records, a rare class)."""
    stats = [
        roc_auc_score(y_true[i], y_score[i], average="macro")
        for i in resamples(len(y_true), n_boot, seed)
        if usable(y_true[i])
    ]
    if not stats:
        return float("nan"), float("nan")
    lo, hi = np.percentile(stats, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)
