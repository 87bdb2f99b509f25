"""The clinic's questions, per arm: are the probabilities calibrated, and at the operating point
fitted on validation (training/operating.py) what are sensitivity, specificity, PPV, NPV and F1 on
test, with bootstrap CIs over test records; and does the teacher change F1 there (a paired
bootstrap, student - baseline, on the same resampled records).

The operating points are fitted from the validation predictions alone and written to
RUN_DIR/report/operating.json before any test prediction is loaded (report/run.py)."""

from __future__ import annotations

import numpy as np

from raysearch.reporting.statistics import two_sided
from raysearch.training.metrics import resamples
from raysearch.training.operating import OperatingPoint

MEASURES = ("sensitivity", "specificity", "ppv", "npv", "f1")
BINS = 10  # equal-width bins of the expected calibration error and the reliability diagram


def _counts(y: np.ndarray, called: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per class (the last axis): true positives, false positives, false negatives, true negatives."""
    y = y.astype(bool)
    tp = (called & y).sum(axis=-2)
    fp = (called & ~y).sum(axis=-2)
    fn = (~called & y).sum(axis=-2)
    tn = (~called & ~y).sum(axis=-2)
    return tp, fp, fn, tn


def measures(y: np.ndarray, called: np.ndarray) -> dict[str, np.ndarray]:
    """Each MEASURE per class; NaN where undefined (no positive record, nothing called, ...)."""
    tp, fp, fn, tn = (c.astype(np.float64) for c in _counts(y, called))
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "sensitivity": tp / (tp + fn),
            "specificity": tn / (tn + fp),
            "ppv": tp / (tp + fp),
            "npv": tn / (tn + fn),
            "f1": 2 * tp / (2 * tp + fp + fn),
        }


def ece(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Expected calibration error per class: |mean label - mean probability| over BINS equal-width
    bins of the probability, weighted by the records in each."""
    bins = np.minimum((p * BINS).astype(int), BINS - 1)
    out = np.zeros(p.shape[1])
    for b in range(BINS):
        inside = bins == b
        n = inside.sum(axis=0)
        with np.errstate(invalid="ignore"):
            gap = np.abs((y * inside).sum(axis=0) - (p * inside).sum(axis=0)) / np.maximum(n, 1)
        out += gap * n / len(p)
    return out


def brier(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.mean((p - y) ** 2, axis=0)


def reliability(y: np.ndarray, p: np.ndarray) -> list[list[list[float]]]:
    """Per class, [mean probability, observed rate, records] of each non-empty bin (the diagram)."""
    bins = np.minimum((p * BINS).astype(int), BINS - 1)
    out = []
    for k in range(p.shape[1]):
        points = []
        for b in range(BINS):
            inside = bins[:, k] == b
            if inside.any():
                points.append([float(p[inside, k].mean()), float(y[inside, k].mean()), int(inside.sum())])
        out.append(points)
    return out


def _ci(samples: list[np.ndarray], level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    stacked = np.array(samples)
    lo, hi = np.nanpercentile(stacked, [50 * (1 - level), 50 * (1 + level)], axis=0)
    return lo, hi


def operating_figures(point: OperatingPoint, y: np.ndarray, p: np.ndarray, n_boot: int) -> dict:
    """One arm's test figures at its operating point and its calibration, each with a 95% CI from
    `n_boot` resamples of the test records; per class, by class name."""
    calibrated = point.calibrate(p)
    called = calibrated >= np.asarray(point.thresholds)
    values = {**measures(y, called)}
    values.update(
        ece_before=ece(y, p),
        ece_after=ece(y, calibrated),
        brier_before=brier(y, p),
        brier_after=brier(y, calibrated),
    )
    boots: dict[str, list[np.ndarray]] = {k: [] for k in values}
    for i in resamples(len(y), n_boot, seed=0):
        for k, v in measures(y[i], called[i]).items():
            boots[k].append(v)
        boots["ece_before"].append(ece(y[i], p[i]))
        boots["ece_after"].append(ece(y[i], calibrated[i]))
        boots["brier_before"].append(brier(y[i], p[i]))
        boots["brier_after"].append(brier(y[i], calibrated[i]))
    per_class: dict[str, dict] = {}
    bounds = {k: _ci(v) for k, v in boots.items()}
    for j, name in enumerate(point.classes):
        per_class[name] = {
            "threshold": point.thresholds[j],
            "temperature": point.temperatures[j],
            **{k: [float(values[k][j]), float(bounds[k][0][j]), float(bounds[k][1][j])] for k in values},
        }
    return {
        "rule": point.rule,
        "per_class": per_class,
        "reliability": {"before": reliability(y, p), "after": reliability(y, calibrated)},
    }


def paired_f1(
    y: np.ndarray, called_a: np.ndarray, called_b: np.ndarray, n_boot: int, level: float = 0.95
) -> dict:
    """Macro-F1 a - b at the two arms' own operating points, with a paired bootstrap over the same
    resampled test records: its CI and a two-sided p (twice the smaller tail around 0)."""

    def macro_f1(i) -> float:
        return float(
            np.nanmean(measures(y[i], called_a[i])["f1"]) - np.nanmean(measures(y[i], called_b[i])["f1"])
        )

    diff = macro_f1(np.arange(len(y)))
    ci, p = two_sided(np.array([macro_f1(i) for i in resamples(len(y), n_boot, seed=0)]), level)
    return {"diff": diff, "ci": ci, "p_value": p, "n_boot": n_boot}
