"""`ptbxl_database.csv` and `scp_statements.csv`: read, checked, turned into labels and metadata.

Labels follow the PTB-XL benchmark (Strodthoff et al. 2020): every scp code with `diagnostic == 1`
maps to its `diagnostic_class`; a record's label is the multi-hot of those classes over (NORM, MI,
STTC, CD, HYP). An ecg_id appears once, and a patient's records lie in one of train, validation
and test (the folds are by patient: a patient on both sides would leak).
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd

from raysearch.data.schema import CLASSES, META_FIELDS, SPLITS
from raysearch.errors import UserError, first_line

DB_COLUMNS = (
    "ecg_id",
    "age",
    "sex",
    "height",
    "weight",
    "scp_codes",
    "strat_fold",
    "filename_lr",
    "filename_hr",
)


SCP_COLUMNS = ("diagnostic", "diagnostic_class")


def read_tables(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read and check `ptbxl_database.csv` and `scp_statements.csv` under `root`."""
    if not root.is_dir():
        raise UserError(f"{root}: not a directory; expected a PTB-XL folder (with ptbxl_database.csv)")
    tables = []
    for name, columns, index in (
        ("ptbxl_database.csv", DB_COLUMNS, None),
        ("scp_statements.csv", SCP_COLUMNS, 0),
    ):
        path = root / name
        if not path.is_file():
            raise UserError(f"{path}: missing; {root} is not a PTB-XL folder (expected {name})")
        try:
            table = pd.read_csv(path, index_col=index)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as e:
            raise UserError(f"{path}: not a readable csv ({first_line(e)})") from None
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise UserError(f"{path}: missing column(s) {', '.join(missing)}; expected PTB-XL's columns")
        tables.append(table)
    return tables[0], tables[1]


def superclass_labels(db: pd.DataFrame, scp: pd.DataFrame) -> np.ndarray:
    """(n, 5) multi-hot of the diagnostic superclasses, aggregated as in the PTB-XL benchmark."""
    diagnostic = scp[scp["diagnostic"] == 1]["diagnostic_class"].to_dict()
    labels = np.zeros((len(db), len(CLASSES)), dtype=np.float32)
    for row, codes in enumerate(db["scp_codes"]):
        try:
            parsed = ast.literal_eval(codes) if isinstance(codes, str) else {}
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            parsed = None
        if not isinstance(parsed, dict) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
            for k, v in parsed.items()
        ):
            raise UserError(
                f"ptbxl_database.csv: ecg_id {db['ecg_id'].iloc[row]}: scp_codes {str(codes)[:80]!r}; "
                f"expected a mapping of SCP codes to likelihoods, e.g. {{'NORM': 100.0}}"
            )
        for code in parsed:
            cls = diagnostic.get(code)
            if cls in CLASSES:
                labels[row, CLASSES.index(cls)] = 1.0
    return labels


def raw_metadata(db: pd.DataFrame) -> np.ndarray:
    """(n, 4) float32 age, sex, height, weight of database rows as read (NaN = missing)."""
    return db[list(META_FIELDS)].apply(pd.to_numeric, errors="coerce").to_numpy(np.float32)


def _split_of(fold: int) -> str:
    return next(name for name, folds in SPLITS.items() if fold in folds)


def _check_split_by_patient(root: Path, db: pd.DataFrame, rows: pd.DataFrame, folds: pd.Series) -> None:
    """An ecg_id appears once, and a patient's records lie in one split: PTB-XL's folds are by
    patient, and a record (or patient) both trained on and validated or tested on would leak."""
    path = root / "ptbxl_database.csv"
    twice = db["ecg_id"][db["ecg_id"].duplicated()].unique()
    if len(twice):
        shown = ", ".join(str(e) for e in twice[:5])
        raise UserError(
            f"{path}: ecg_id {shown} listed more than once ({len(twice)} in all); expected each once"
        )
    if "patient_id" not in rows.columns:
        return
    split = folds.astype(int).map(_split_of)
    spread = split.groupby(rows["patient_id"]).nunique()
    crossing = spread[spread > 1].index
    if len(crossing):
        shown = "; ".join(
            f"patient {p:g}: "
            + ", ".join(
                f"ecg_id {e} in {_split_of(int(f))}"
                for e, f in zip(r["ecg_id"], r["strat_fold"], strict=True)
            )
            for p, r in list(rows[rows["patient_id"].isin(crossing[:3])].groupby("patient_id"))[:3]
        )
        raise UserError(
            f"{path}: {len(crossing)} patient(s) with records in more than one of train (folds 1-8), "
            f"validation (9) and test (10) ({shown}); expected each patient's records in one split"
        )
