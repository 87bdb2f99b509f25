"""`python -m raysearch predict`: a model's class probabilities for WFDB records.

    result = predict_records(PredictOptions(model="runs/s/best/student-2", records=["scans/rec042"],
                                        metadata="patients.csv", out="predictions.csv"))

MODEL is a model folder (or a RUN_DIR holding one), an exported ONNX, .pt2 or TorchScript file
(deploy.load_model). Records are named one by one, or taken from a PTB-XL folder (`data`, its
records at the model's rate, optionally some folds) whose database csv also gives the metadata.
One row per record: the probabilities (calibrated by the model's operating point) and `labels`,
the superclasses over their thresholds, or the error that kept it from being read; a bad record
never loses the others' rows. CSV, or JSON lines for an output named *.jsonl / *.json.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from raysearch.data.database import raw_metadata, read_tables
from raysearch.data.schema import SPLITS
from raysearch.deploy.load import load_model
from raysearch.deploy.model import MISSING_METADATA, describe_window
from raysearch.deploy.options import PredictOptions
from raysearch.deploy.records import RecordError, lookup, read_metadata_csv, read_record
from raysearch.errors import UserError
from raysearch.files import write_text, write_with

log = logging.getLogger(__name__)


def _folds(text: str) -> tuple[int, ...]:
    if text in SPLITS:
        return SPLITS[text]
    try:
        folds = tuple(int(f) for f in text.split(","))
    except ValueError:
        folds = ()
    if not folds or not all(1 <= f <= 10 for f in folds):
        raise UserError(f"--folds {text!r}: expected folds 1..10, comma-separated (or train, val, test)")
    return folds


def _inputs(options: PredictOptions, sampling_rate: int) -> list[dict]:
    """The records to predict: {record, path, ecg_id?, meta (4,) or a RecordError}."""
    table = read_metadata_csv(options.metadata) if options.metadata else None
    if options.data:
        root = Path(options.data)
        db, _ = read_tables(root)
        if options.folds:
            db = db[db["strat_fold"].isin(_folds(options.folds))]
        column = "filename_lr" if sampling_rate <= 100 else "filename_hr"  # resampled when not equal
        raw = raw_metadata(db)
        return [
            {
                "record": name,
                "path": str(root / name),
                "ecg_id": int(ecg_id),
                "meta": raw[i] if table is None else _meta(table, name, options.metadata),
            }
            for i, (name, ecg_id) in enumerate(zip(db[column], db["ecg_id"], strict=True))
        ]
    if options.folds:
        raise UserError("--folds selects PTB-XL folds: it needs --data")
    return [
        {
            "record": path,
            "path": path,
            "meta": np.full(4, np.nan, np.float32) if table is None else _meta(table, path, options.metadata),
        }
        for path in options.records
    ]


def _meta(table: dict, path: str, source: str):
    try:
        return lookup(table, path, source)
    except RecordError as e:
        return e


def predict_records(options: PredictOptions, progress: bool = True) -> dict:
    """Predict every record; returns {model, rows, errors, out}. Each row has `record` (and
    `ecg_id` from PTB-XL), the class probabilities, or `error` for a record that could not be read."""
    from tqdm import tqdm

    if not options.records and not options.data:
        raise UserError("nothing to predict: name WFDB records or a PTB-XL folder with --data")
    if options.records and options.data:
        raise UserError("records and --data exclude each other: name records or a PTB-XL folder")
    out = Path(options.out) if options.out else None
    if out is not None and (out.is_dir() or not out.parent.is_dir()):
        raise UserError(f"--out {out}: expected a file in an existing folder")
    model = load_model(options.model, precision=options.precision or "", threads=options.threads)
    inputs = _inputs(options, model.sampling_rate)
    if model.operating is None:
        log.warning(
            f"raysearch: {options.model} carries no operating point (saved before raysearch fitted one): "
            f"its probabilities are not calibrated and no labels are written"
        )
    if not options.data and not options.metadata:
        log.warning(f"raysearch: {MISSING_METADATA} (--metadata CSV gives them)")
    rows = [{k: v for k, v in item.items() if k in ("record", "ecg_id")} for item in inputs]
    by_length: dict[int, list[tuple[int, np.ndarray]]] = {}
    for i, item in enumerate(tqdm(inputs, desc="reading", unit="rec", disable=not progress or None)):
        try:
            x = read_record(item["path"], model.leads, model.sampling_rate)
            if x.shape[1] < max(model.window, 1):
                raise RecordError(
                    f"{item['record']}: {x.shape[1]} samples at {model.sampling_rate} Hz; expected at "
                    f"least one window of {describe_window(model.window, model.sampling_rate)}"
                )
            if isinstance(item["meta"], RecordError):  # a readable record the CSV does not list
                raise item["meta"]
        except RecordError as e:
            rows[i]["error"] = str(e)
            continue
        by_length.setdefault(x.shape[1], []).append((i, x))
    for group in by_length.values():  # records of one length predict together
        index = [i for i, _ in group]
        meta = np.stack([inputs[i]["meta"] for i in index])
        probs = model.predict(np.stack([x for _, x in group]), meta)
        called = model.labels(probs)
        for j, (i, p) in enumerate(zip(index, probs, strict=True)):
            rows[i].update(zip(model.classes, (float(v) for v in p), strict=True))
            if called is not None:  # the superclasses over their thresholds, e.g. "NORM" or "MI;STTC"
                rows[i]["labels"] = ";".join(c for c, on in zip(model.classes, called[j], strict=True) if on)
    if out is not None:
        _write(rows, model.classes, out)
    return {
        "model": str(options.model),
        "classes": list(model.classes),
        "rows": rows,
        "errors": [r for r in rows if "error" in r],
        "out": str(out) if out else None,
    }


def _write(rows: list[dict], classes: tuple[str, ...], out: Path) -> None:
    """CSV (one column per class, `error` last) or JSON lines; written whole, then renamed."""
    import pandas as pd

    if out.suffix.lower() in (".jsonl", ".json"):
        write_text(out, "".join(json.dumps(r) + "\n" for r in rows))
    else:
        columns = [c for c in ("record", "ecg_id") if any(c in r for r in rows)] + list(classes)
        columns += [c for c in ("labels",) if any(c in r for r in rows)] + ["error"]
        table = pd.DataFrame(rows, columns=columns)
        write_with(out, lambda tmp: table.to_csv(tmp, index=False, float_format="%.7g"))
