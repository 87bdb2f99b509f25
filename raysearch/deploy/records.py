"""ECG records for a model: WFDB files read with wfdb, the model's leads picked by name, converted
to mV and resampled to its rate; the patients' age, sex, height and weight from a CSV.

    x = read_record("scans/rec042", ("I", "II"), 100)   # (2, T) float32 mV at 100 Hz
    table = read_metadata_csv("patients.csv")           # {record: [age, sex, height, weight]}

Every problem is a RecordError naming the record and what was expected, so a caller reading many
records can list the bad ones and go on with the rest.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

from raysearch.data.schema import META_FIELDS
from raysearch.errors import UserError, first_line

# Physical units wfdb headers use, as a factor to mV ("" is WFDB's default unit, mV).
UNITS = {"mv": 1.0, "": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3}


SEX = {"0": 0.0, "1": 1.0, "m": 0.0, "male": 0.0, "f": 1.0, "female": 1.0}


# WFDB's missing-value sample per storage format: the format's most negative value (WFDB spec)
MISSING = {"8": None, "16": -32768, "61": -32768, "80": -128, "160": -32768, "212": -2048}


class RecordError(UserError):
    """One record that cannot be read for this model (the others can still be)."""


def record_name(path: str) -> str:
    """A record as WFDB names it: the path without a .hea/.dat/.mat suffix."""
    root, ext = os.path.splitext(path)
    return root if ext.lower() in (".hea", ".dat", ".mat") else path


def read_record(path: str, leads: tuple[str, ...], sampling_rate: int) -> np.ndarray:
    """The record's `leads` (any order in the file, extra leads ignored) in mV at `sampling_rate`.

    At the model's own rate the samples are converted exactly as the data layer does (digital,
    baseline and gain in float32), so a PTB-XL record gives the very input training saw.
    """
    import wfdb

    name = record_name(path)
    if not os.path.exists(name + ".hea"):
        raise RecordError(f"{name}: no header {name}.hea; expected a WFDB record")
    try:
        record = wfdb.rdrecord(name, physical=False, return_res=64)
    except Exception as e:  # wfdb raises many types for malformed headers and data
        raise RecordError(f"{name}: unreadable WFDB record ({first_line(e)})") from None
    names = [str(s).upper() for s in record.sig_name or []]
    missing = [lead for lead in leads if lead.upper() not in names]
    if missing:
        raise RecordError(
            f"{name}: no lead {', '.join(missing)} (it has {', '.join(record.sig_name or []) or 'none'}); "
            f"the model reads {', '.join(leads)}"
        )
    picks = [names.index(lead.upper()) for lead in leads]
    factors = []
    for i in picks:
        unit = str(record.units[i] if record.units else "").strip().lower()
        if unit not in UNITS:
            raise RecordError(
                f"{name}: lead {record.sig_name[i]} in {record.units[i]!r}; expected mV (or uV, V)"
            )
        factors.append(UNITS[unit])
    fmts = record.fmt or ["16"] * len(names)
    holes = {
        record.sig_name[i]: int((record.d_signal[:, i] == MISSING.get(str(fmts[i]))).sum())
        for i in picks
        if MISSING.get(str(fmts[i])) is not None
    }
    holes = {lead: n for lead, n in holes.items() if n}
    if holes:
        raise RecordError(
            f"{name}: samples missing (WFDB's missing value) in "
            + ", ".join(f"{lead} ({n} of {len(record.d_signal)})" for lead, n in holes.items())
            + "; expected a complete record (a model scores only what was recorded)"
        )
    digital = record.d_signal[:, picks].T.astype(np.float32)
    x = digital - np.asarray(record.baseline, np.float32)[picks, None]
    x /= np.asarray(record.adc_gain, np.float32)[picks, None]
    if any(f != 1.0 for f in factors):
        x *= np.asarray(factors, np.float32)[:, None]
    return _resample(x, float(record.fs or 0), sampling_rate, name)


def _resample(x: np.ndarray, fs: float, sampling_rate: int, name: str) -> np.ndarray:
    """`x` at `fs` Hz brought to the model's rate with scipy's polyphase filter (anti-aliased)."""
    if fs == sampling_rate:
        return x
    if not np.isfinite(fs) or fs <= 0:
        raise RecordError(f"{name}: sampling rate {fs:g} Hz in its header; expected a positive rate")
    if fs < sampling_rate:
        raise RecordError(
            f"{name}: {fs:g} Hz, below the model's {sampling_rate} Hz; expected at least {sampling_rate} Hz "
            f"(a slower record lacks the frequencies the model was trained on)"
        )
    ratio = Fraction(sampling_rate / fs).limit_denominator(1000)
    if abs(float(ratio) - sampling_rate / fs) > 1e-9:
        raise RecordError(
            f"{name}: {fs:g} Hz cannot be resampled to {sampling_rate} Hz exactly; expected a rate with "
            f"a simple ratio to it (e.g. 200, 250, 500, 1000 Hz)"
        )
    from scipy.signal import resample_poly

    return resample_poly(x, ratio.numerator, ratio.denominator, axis=1).astype(np.float32)


def read_metadata_csv(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """{record: (age, sex, height, weight)} from a CSV with a `record` column and any of the four
    (case-insensitive; an absent column or an empty cell is missing). Sex: 0/1, M/F, male/female.

    The record key is matched against a record's path as given and its file name (see lookup).
    """
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise UserError(f"{path}: no such metadata CSV") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not a readable CSV ({first_line(e)})") from None
    columns = {c.strip().lower(): c for c in table.columns}
    present = [f for f in META_FIELDS if f in columns]
    if "record" not in columns or not present:
        raise UserError(
            f"{path}: columns {', '.join(table.columns)}; "
            f"expected 'record' and any of {', '.join(META_FIELDS)}"
        )
    out: dict[str, np.ndarray] = {}
    for row, values in enumerate(table.to_dict("records"), start=2):  # row 1 is the header
        key = values[columns["record"]].strip()
        if key in out:
            raise UserError(f"{path}: line {row}: record {key!r} listed twice; expected one line per record")
        meta = np.full(4, np.nan, np.float32)
        for i, field in enumerate(META_FIELDS):
            cell = values[columns[field]].strip() if field in columns else ""
            if cell == "" or cell.lower() in ("nan", "na"):
                continue
            if field == "sex":
                if cell.lower() not in SEX:
                    raise UserError(f"{path}: line {row}: sex {cell!r}; expected 0/1, M/F or male/female")
                meta[i] = SEX[cell.lower()]
                continue
            try:
                meta[i] = float(cell)
            except ValueError:
                raise UserError(f"{path}: line {row}: {field} {cell!r}; expected a number") from None
        out[key] = meta
    return out


def lookup(table: dict[str, np.ndarray], path: str, source: str) -> np.ndarray:
    """The metadata of record `path` in `table`: by its path as given, else its file name."""
    name = record_name(path)
    for key in (path, name, os.path.basename(name)):
        if key in table:
            return table[key]
    raise RecordError(f"{name}: not in {source}; expected a line with record {os.path.basename(name)!r}")
