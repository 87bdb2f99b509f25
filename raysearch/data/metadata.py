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

from __future__ import annotations

import numpy as np
import torch

AGE_CENTRES = np.array([5, 20, 30, 40, 50, 60, 70, 80, 90], dtype=np.float64)


HEIGHT_CENTRES = np.array([100, 150, 160, 170, 180, 190], dtype=np.float64)  # cm


WEIGHT_CENTRES = np.array([20, 50, 60, 70, 80, 90, 100, 120], dtype=np.float64)  # kg


# Outside these ranges a value is a data-entry error (PTB-XL has a height of 6 cm and a weight
# of 5 kg for adults) and is treated as missing.
PLAUSIBLE = {"age": (0.0, 400.0), "height": (40.0, 230.0), "weight": (2.0, 300.0)}


AGE_90_PLUS = 89.5


def _soft_bins(v: torch.Tensor, centres: np.ndarray, lo: float, hi: float) -> torch.Tensor:
    """Soft one-hot of `v` over `centres`, with a trailing missing-indicator column."""
    c = torch.as_tensor(centres, dtype=v.dtype)
    spacing = torch.as_tensor(np.diff(centres, append=2 * centres[-1] - centres[-2]), dtype=v.dtype)
    missing = ~torch.isfinite(v) | (v < lo) | (v > hi)
    v = torch.where(missing, c[0], v).clamp(float(centres[0]), float(centres[-1]))
    w = torch.exp(-((v[:, None] - c[None, :]) ** 2) / (2.0 * (0.5 * spacing[None, :]) ** 2))
    w = torch.where(missing[:, None], 0.0, w / w.sum(dim=1, keepdim=True))
    return torch.cat([w, missing[:, None].to(v.dtype)], dim=1)


def encode_metadata_tensor(raw: torch.Tensor) -> torch.Tensor:
    """Encode raw metadata (n, 4) age, sex, height, weight (NaN = missing) into (n, META_DIM).

    Plain tensor operations in `raw`'s dtype, so the same code runs in training (float64, through
    `encode_metadata`) and inside an exported model's graph (float32, see deploy/export.py, Portable).
    """
    age, sex, height, weight = raw.unbind(dim=1)
    age = torch.where(age > AGE_90_PLUS, float(AGE_CENTRES[-1]), age)  # 1.0.3's 300, 1.0.1's 90..95
    male, female = sex == 0, sex == 1
    sex_cols = torch.stack([male, female, ~(male | female)], dim=1).to(raw.dtype)
    parts = [
        _soft_bins(age, AGE_CENTRES, *PLAUSIBLE["age"]),
        sex_cols,
        _soft_bins(height, HEIGHT_CENTRES, *PLAUSIBLE["height"]),
        _soft_bins(weight, WEIGHT_CENTRES, *PLAUSIBLE["weight"]),
    ]
    return torch.cat(parts, dim=1)


def encode_metadata(age, sex, height, weight) -> np.ndarray:
    """Encode per-record metadata arrays (NaN = missing) into an (n, META_DIM) float32 matrix.

    Columns: age bins + missing, sex (male, female) + missing, height bins + missing,
    weight bins + missing. `sex` follows PTB-XL: 0 = male, 1 = female.
    """
    raw = np.stack([np.asarray(a, dtype=np.float64).reshape(-1) for a in (age, sex, height, weight)], axis=1)
    return encode_metadata_tensor(torch.from_numpy(raw)).numpy().astype(np.float32)


META_DIM = len(AGE_CENTRES) + 1 + 3 + len(HEIGHT_CENTRES) + 1 + len(WEIGHT_CENTRES) + 1
