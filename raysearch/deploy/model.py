"""A model folder for new ECGs: raw signals in mV and raw metadata in, class probabilities out.

    model = open_folder("runs/search-4/best/student-4")   # any folder with model.pt + config.json
    p = model.predict(signals, metadata)    # signals (n, len(model.leads), T) mV at model.sampling_rate,
                                            # T >= model.window; metadata (n, 4) age, sex, height,
                                            # weight (NaN = missing); p (n, 5) over model.classes

Inside, exactly what evaluation does in training (evaluation.window_probabilities):
standardization with the training folds' per-lead mean and std, the metadata soft encoding,
sliding windows whose sigmoid outputs are averaged per record, in the precision the network was
trained and evaluated with (`precision="fp32"` for full precision, which exported files compute).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from raysearch.data.metadata import encode_metadata
from raysearch.data.schema import CLASSES, LEADS, META_FIELDS
from raysearch.errors import UserError
from raysearch.training.checkpoint import SavedNetwork, import_net, load_checkpoint
from raysearch.training.config import PRECISIONS, TrainConfig, window_geometry, window_size
from raysearch.training.device import pick_device
from raysearch.training.evaluation import window_probabilities
from raysearch.training.operating import OperatingPoint


def find_model_dir(path: str | os.PathLike) -> Path:
    """The model folder (model.pt + config.json) that `path` names: the folder itself, its
    model.pt, or a search's RUN_DIR holding exactly one model (else the choices are named)."""
    path = Path(path)
    if path.is_file() and path.name == "model.pt":
        path = path.parent
    if (path / "model.pt").is_file():
        return path
    if not path.is_dir():
        raise UserError(f"{path}: no such model folder; expected a RUN_DIR or its best/ARM-LEADS folder")
    found = sorted(
        p.parent for p in path.glob("*/*/model.pt") if p.parent.parent.name in ("best", "teachers")
    )
    if len(found) == 1:
        return found[0]
    if not found:
        raise UserError(f"{path}: no model.pt in it, best/ or teachers/; expected a raysearch model folder")
    names = ", ".join(str(p.relative_to(path)) for p in found)
    raise UserError(f"{path} holds {len(found)} models ({names}): name one, e.g. {found[0]}")


def describe_window(window: int, sampling_rate: int) -> str:
    """A model's evaluation window as its messages name it: samples, seconds and rate."""
    return f"{window} samples ({window / sampling_rate:g} s at {sampling_rate} Hz)"


MISSING_METADATA = (
    "no metadata: age, sex, height and weight are treated as unknown for every record; the model "
    "was trained with them where PTB-XL had them, and its probabilities can differ without them"
)


def check_inputs(signals, metadata, leads: tuple[str, ...], window: int, sampling_rate: int) -> tuple:
    """`signals` (n, leads, T >= window) and `metadata` (n, 4) or None as float32 arrays, or a
    UserError saying what was expected."""
    x = np.asarray(signals, dtype=np.float32)
    if x.ndim != 3 or x.shape[1] != len(leads):
        raise UserError(
            f"signals of shape {x.shape}: expected (records, {len(leads)} leads ({','.join(leads)}), samples)"
        )
    if x.shape[2] < max(window, 1):
        raise UserError(
            f"{x.shape[2]} samples per record: expected at least one window of "
            f"{describe_window(window, sampling_rate)}"
        )
    broken = np.flatnonzero(~np.isfinite(x).all(axis=(1, 2)))
    if len(broken):
        shown = ", ".join(map(str, broken[:10])) + (" ..." if len(broken) > 10 else "")
        raise UserError(
            f"signals of record(s) {shown} ({len(broken)} of {len(x)}) hold missing or non-finite samples "
            f"(NaN, inf); expected complete records in mV (a model scores only what was recorded)"
        )
    if metadata is None:  # once per place it is called from (Python's default warning filter)
        warnings.warn(MISSING_METADATA, UserWarning, stacklevel=3)
    meta = np.full((len(x), 4), np.nan, np.float32) if metadata is None else np.asarray(metadata, np.float32)
    if meta.shape != (len(x), 4):
        raise UserError(f"metadata of shape {meta.shape}: expected ({len(x)}, 4) {', '.join(META_FIELDS)}")
    return x, meta


def labels_of(operating: OperatingPoint | None, probabilities: np.ndarray) -> np.ndarray | None:
    """`predict`'s (calibrated) probabilities over the operating point's thresholds, or None."""
    return operating.called(probabilities) if operating else None


class FolderModel:
    """One trained network (teacher, student or baseline) with what it needs to read new ECGs."""

    def __init__(
        self,
        saved: SavedNetwork,
        source: str = "checkpoint",
        device: str = "cpu",
        precision: str = "",
        operating: dict | None = None,
    ):
        if not saved.data:
            raise UserError(
                f"{source}: no standardization statistics in config.json; expected a checkpoint that "
                f"records its training data's mean and std"
            )
        if precision and precision not in PRECISIONS:
            raise UserError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
        self.config = TrainConfig(**saved.config).resolved()
        if precision:
            self.config = replace(self.config, precision=precision)
        self.device = pick_device(device)
        self.net = import_net(saved, source).to(self.device).eval()
        self.leads = tuple(LEADS[i] for i in self.config.lead_indices)
        self.sampling_rate = int(saved.data["sampling_rate"])
        idx = list(self.config.lead_indices)
        self.mean = np.asarray(saved.data["mean"], dtype=np.float32)[idx]
        self.std = np.asarray(saved.data["std"], dtype=np.float32)[idx]
        self.classes = CLASSES
        self.window, self.stride = window_size(self.config, self.sampling_rate)
        self.scores = dict(saved.scores)
        # the calibration and thresholds fitted on validation (metrics.json); None in older folders
        self.operating = OperatingPoint.from_dict(operating) if operating else None

    @property
    def info(self) -> dict:
        """What an exported model carries about itself (deploy/export.py)."""
        return {
            "leads": list(self.leads),
            "sampling_rate": self.sampling_rate,
            "window": self.window,
            "stride": self.stride,
            "classes": list(self.classes),
            "stage": self.config.stage,
            "config": asdict(self.config),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "operating_point": self.operating.to_dict() if self.operating else None,
            "val_macro_auc": self.scores.get("val_macro_auc"),
            "test_macro_auc": self.scores.get("test_macro_auc"),
            "inputs": "signals (records, leads, samples) float32 mV at sampling_rate, samples >= window; "
            "metadata (records, 4) float32 age (years), sex (0 male, 1 female), height (cm), "
            "weight (kg), NaN = missing",
            "outputs": "probabilities (records, 5) float32 over classes, calibrated by operating_point's "
            "temperatures when it has one; a class is called at or over its threshold",
        }

    def predict(self, signals, metadata=None, batch_records: int = 64) -> np.ndarray:
        """Class probabilities (n, 5) of `signals` (n, leads, T) in mV; `metadata` (n, 4) or None."""
        x, meta = check_inputs(signals, metadata, self.leads, self.window, self.sampling_rate)
        x = (x - self.mean[None, :, None]) / self.std[None, :, None]
        encoded = encode_metadata(*meta.T)
        length, starts = window_geometry(self.config, self.sampling_rate, x.shape[2])
        out = np.zeros((len(x), len(CLASSES)), dtype=np.float32)
        for s in range(0, len(x), batch_records):
            xb = torch.from_numpy(x[s : s + batch_records]).to(self.device)
            mb = torch.from_numpy(encoded[s : s + batch_records]).to(self.device)
            probabilities = window_probabilities(self.net, xb, mb, self.config, length, starts)
            out[s : s + len(xb)] = probabilities.cpu().numpy()
        return self.operating.calibrate(out).astype(np.float32) if self.operating else out

    def labels(self, probabilities: np.ndarray) -> np.ndarray | None:
        """Boolean (records, classes) of `predict`'s probabilities over each class's threshold;
        None for a model saved without an operating point."""
        return labels_of(self.operating, probabilities)


def open_folder(path: str | os.PathLike, device: str = "cpu", precision: str = "") -> FolderModel:
    """The model saved in a RUN_DIR (model.pt + config.json), e.g. RUN_DIR/best/student-4, or a
    search's RUN_DIR holding one model. `precision` overrides the training precision."""
    model_dir = find_model_dir(path)
    saved = load_checkpoint(model_dir)
    metrics = model_dir / "metrics.json"
    operating = None
    if metrics.is_file():  # written beside every evaluated model; its scores travel with exports
        scores = json.loads(metrics.read_text())
        saved.scores = {k: scores.get(k) for k in ("val_macro_auc", "test_macro_auc")}
        operating = scores.get("operating_point")
    return FolderModel(saved, str(model_dir), device, precision, operating)
