"""Soft label encoding of the patient metadata (age, sex, height, weight).

Missing values are first-class: height is missing for ~68% of PTB-XL records and weight for ~57%.
Each numeric field becomes a *soft one-hot* over ordinal bins plus a missing indicator:

    membership_k = exp(-(v - c_k)^2 / (2 * s_k^2)),  normalised to sum to 1,

where c_k are the bin centres below and s_k is half the spacing to the next centre. A value therefore
lights up its own bin and, less, its neighbours (so 64 and 66 years look alike, unlike a hard
one-hot), and values beyond the outer centres saturate the outer bin. A missing or implausible
value gives all-zero memberships and missing = 1. Sex is a one-hot (male, female) plus missing.

Ages: PTB-XL 1.0.3 writes ages over 89 as 300 (1.0.1 kept the number); both are treated as the
open "90+" bin, never as an age of 300.
"""

import numpy as np

AGE_CENTRES = np.array([5, 20, 30, 40, 50, 60, 70, 80, 90], dtype=np.float64)
HEIGHT_CENTRES = np.array([100, 150, 160, 170, 180, 190], dtype=np.float64)  # cm
WEIGHT_CENTRES = np.array([20, 50, 60, 70, 80, 90, 100, 120], dtype=np.float64)  # kg

# Outside these ranges a value is a data-entry error (PTB-XL has a height of 6 cm and a weight
# of 5 kg for adults) and is treated as missing.
PLAUSIBLE = {"age": (0.0, 400.0), "height": (40.0, 230.0), "weight": (2.0, 300.0)}
AGE_90_PLUS = 89.5


def _soft_bins(values: np.ndarray, centres: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Soft one-hot of `values` over `centres`, with a trailing missing-indicator column."""
    v = np.asarray(values, dtype=np.float64)
    missing = ~np.isfinite(v) | (v < lo) | (v > hi)
    v = np.clip(np.where(missing, centres[0], v), centres[0], centres[-1])
    spacing = np.diff(centres, append=centres[-1] + (centres[-1] - centres[-2]))
    w = np.exp(-((v[:, None] - centres[None, :]) ** 2) / (2.0 * (0.5 * spacing[None, :]) ** 2))
    w /= w.sum(axis=1, keepdims=True)
    w[missing] = 0.0
    return np.concatenate([w, missing[:, None].astype(np.float64)], axis=1)


def encode_metadata(age, sex, height, weight) -> np.ndarray:
    """Encode per-record metadata arrays (NaN = missing) into an (n, META_DIM) float32 matrix.

    Columns: age bins + missing, sex (male, female) + missing, height bins + missing,
    weight bins + missing. `sex` follows PTB-XL: 0 = male, 1 = female.
    """
    age = np.asarray(age, dtype=np.float64)
    age = np.where(age > AGE_90_PLUS, AGE_CENTRES[-1], age)  # 1.0.3's 300 and 1.0.1's 90..95
    sex = np.asarray(sex, dtype=np.float64)
    sex_missing = ~np.isin(sex, (0.0, 1.0))
    sex_cols = np.stack([(sex == 0) & ~sex_missing, (sex == 1) & ~sex_missing, sex_missing], axis=1)
    parts = [
        _soft_bins(age, AGE_CENTRES, *PLAUSIBLE["age"]),
        sex_cols.astype(np.float64),
        _soft_bins(height, HEIGHT_CENTRES, *PLAUSIBLE["height"]),
        _soft_bins(weight, WEIGHT_CENTRES, *PLAUSIBLE["weight"]),
    ]
    return np.concatenate(parts, axis=1).astype(np.float32)


META_DIM = len(AGE_CENTRES) + 1 + 3 + len(HEIGHT_CENTRES) + 1 + len(WEIGHT_CENTRES) + 1
