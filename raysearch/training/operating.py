"""A model's operating point, fitted on the validation fold only: a temperature per class that
calibrates its probabilities, and a threshold per class that turns them into labels.

    point = fit_operating_point(y_val, p_val, "f1")      # validation labels and probabilities
    calibrated = point.calibrate(p_test)                 # then applied, unchanged, to test
    labels = point.labels(p_test)

Temperature scaling divides each class's logit, log(p / (1 - p)), by T (T > 1 softens an
overconfident class, T < 1 sharpens). One temperature per class, not one for all: the five
superclasses differ in prevalence and in how confident the sigmoid outputs are, and five
parameters are few for PTB-XL's ~2,100 validation records. A monotone map, so AUC is unchanged.

Threshold rules, per class on the calibrated validation probabilities: `f1` (the threshold of
best F1), `youden` (best sensitivity + specificity - 1), `sensitivity:X` (the highest threshold
whose sensitivity is at least X, e.g. 0.9: a screening device that must not miss).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from raysearch.errors import UserError

RULES = ("f1", "youden", "sensitivity:X")
EPS = 1e-6  # probabilities are clipped to [EPS, 1 - EPS] before their logit


def check_rule(rule: str) -> str:
    """The rule as given, or a UserError naming what is expected."""
    if rule in ("f1", "youden"):
        return rule
    if rule.startswith("sensitivity:"):
        try:
            target = float(rule.split(":", 1)[1])
        except ValueError:
            target = -1.0
        if 0 < target < 1:
            return rule
    raise UserError(f"threshold rule {rule!r}: expected f1, youden or sensitivity:X with 0 < X < 1")


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def _temperature(y: np.ndarray, p: np.ndarray) -> float:
    """The T minimizing the binary cross-entropy of sigmoid(logit(p) / T) (SciPy, over log T)."""
    from scipy.optimize import minimize_scalar

    z = logit(p)

    def nll(log_t: float) -> float:
        q = np.clip(1 / (1 + np.exp(-z / np.exp(log_t))), EPS, 1 - EPS)
        return float(-np.mean(y * np.log(q) + (1 - y) * np.log1p(-q)))

    return float(np.exp(minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded").x))


def _threshold(y: np.ndarray, p: np.ndarray, rule: str) -> float:
    """One class's threshold on its (calibrated) probabilities: a record is positive at p >= t."""
    candidates = np.unique(p)
    positives, negatives = y.sum(), len(y) - y.sum()
    best, best_t = -np.inf, 0.5
    for t in candidates[::-1]:  # from the highest threshold down: ties keep the higher one
        called = p >= t
        tp = float((called & (y == 1)).sum())
        fp = float((called & (y == 0)).sum())
        sensitivity = tp / positives if positives else 0.0
        if rule.startswith("sensitivity:"):
            if sensitivity >= float(rule.split(":", 1)[1]):
                return float(t)
            continue
        if rule == "f1":
            value = 2 * tp / (tp + fp + positives) if tp else 0.0
        else:  # youden
            specificity = 1 - fp / negatives if negatives else 0.0
            value = sensitivity + specificity - 1
        if value > best:
            best, best_t = value, float(t)
    return float(candidates.min()) if rule.startswith("sensitivity:") else best_t


@dataclass
class OperatingPoint:
    """Per class: the temperature that calibrates it and the threshold that labels it."""

    classes: list[str]
    temperatures: list[float]
    thresholds: list[float]  # on calibrated probabilities
    rule: str

    def calibrate(self, p: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-logit(p) / np.asarray(self.temperatures)))

    def labels(self, p: np.ndarray) -> np.ndarray:
        """Boolean (records, classes): the calibrated probability at or over the class's threshold."""
        return self.called(self.calibrate(p))

    def called(self, calibrated: np.ndarray) -> np.ndarray:
        """Boolean (records, classes) from probabilities already calibrated (what predict returns)."""
        return np.asarray(calibrated) >= np.asarray(self.thresholds)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> OperatingPoint:
        return cls(list(d["classes"]), list(d["temperatures"]), list(d["thresholds"]), d["rule"])


def fit_operating_point(
    y_val: np.ndarray, p_val: np.ndarray, rule: str, classes: list[str]
) -> OperatingPoint:
    """Temperatures, then thresholds on the calibrated probabilities, from validation alone."""
    check_rule(rule)
    y_val = np.asarray(y_val, dtype=np.float64)
    temperatures = [_temperature(y_val[:, k], p_val[:, k]) for k in range(y_val.shape[1])]
    point = OperatingPoint(list(classes), temperatures, [0.5] * len(classes), rule)
    calibrated = point.calibrate(p_val)
    point.thresholds = [_threshold(y_val[:, k], calibrated[:, k], rule) for k in range(y_val.shape[1])]
    return point
