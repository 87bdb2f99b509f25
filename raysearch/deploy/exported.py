"""An exported file opened for prediction: ONNX with onnxruntime, .pt2 with torch.export.load,
TorchScript with torch.jit, with the same `predict(signals, metadata)` and attributes as a model
folder (model.py).
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from raysearch.deploy.export import DEPLOY_HINT, INFO_FILE, _quiet
from raysearch.deploy.model import check_inputs, labels_of
from raysearch.errors import UserError, first_line
from raysearch.training.operating import OperatingPoint


class ExportedModel:
    """An exported file, run with onnxruntime (ONNX), torch.export (.pt2) or torch.jit (TorchScript),
    with the same `predict(signals, metadata)` and attributes (leads, sampling_rate, window, classes,
    info)."""

    def __init__(self, path: str | os.PathLike, threads: int = 0):
        self.path = Path(path)
        if _is_zip(self.path):  # .pt2 and TorchScript files are zip archives; ONNX files are not
            self.format = "pt2" if _is_pt2(self.path) else "torchscript"
            self._module, self.info = (_pt2 if self.format == "pt2" else _torchscript)(self.path)
        else:
            self._session, self.info = _onnx_session(self.path, threads)
            self.format = "onnx"
        self.leads = tuple(self.info["leads"])
        self.sampling_rate = int(self.info["sampling_rate"])
        self.window = int(self.info["window"])
        self.classes = tuple(self.info["classes"])
        point = self.info.get("operating_point")  # the graph calibrates; labels are thresholds here
        self.operating = OperatingPoint.from_dict(point) if point else None

    def predict(self, signals, metadata=None, batch_records: int = 64) -> np.ndarray:
        """Class probabilities (n, 5) of `signals` (n, leads, T) in mV; `metadata` (n, 4) or None."""
        x, meta = check_inputs(signals, metadata, self.leads, self.window, self.sampling_rate)
        out = np.zeros((len(x), len(self.classes)), dtype=np.float32)
        for s in range(0, len(x), batch_records):
            xb, mb = x[s : s + batch_records], meta[s : s + batch_records]
            if self.format == "onnx":
                out[s : s + len(xb)] = self._session.run(None, {"signals": xb, "metadata": mb})[0]
            else:
                with torch.no_grad():
                    out[s : s + len(xb)] = self._module(torch.from_numpy(xb), torch.from_numpy(mb)).numpy()
        return out

    def labels(self, probabilities: np.ndarray) -> np.ndarray | None:
        """Boolean (records, classes) of `predict`'s probabilities over each class's threshold;
        None for a file exported without an operating point."""
        return labels_of(self.operating, probabilities)


def _is_zip(path: Path) -> bool:
    """A zip archive, whole or truncated (its first bytes say so even when its end is gone)."""
    with open(path, "rb") as fh:
        return fh.read(4) == b"PK\x03\x04"


def _is_pt2(path: Path) -> bool:
    """A torch.export archive: its zip holds an `archive_format` entry (TorchScript's does not)."""
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.rsplit("/", 1)[-1] == "archive_format" for n in z.namelist())
    except zipfile.BadZipFile:
        return path.suffix == ".pt2"  # damaged: named by what it claims to be


def _pt2(path: Path):
    """A .pt2 file raysearch exported: (module, info), or a UserError that says .pt2."""
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path}: a truncated or damaged .pt2 (zip) file; export it again")
    extra = {INFO_FILE: ""}
    try:
        with _quiet():
            module = torch.export.load(str(path), extra_files=extra).module()
    except Exception as e:  # torch.export raises its own types for what it cannot load
        raise UserError(f"{path}: not a readable .pt2 model ({first_line(e)})") from None
    if not extra[INFO_FILE]:
        raise UserError(f"{path}: a .pt2 file without raysearch's {INFO_FILE}; expected one it exported")
    return module, json.loads(extra[INFO_FILE])


def _torchscript(path: Path):
    """A TorchScript file raysearch exported: (module, info), or a UserError that says TorchScript."""
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path}: a truncated or damaged TorchScript (zip) file; export it again")
    with zipfile.ZipFile(path) as z:
        if not any(n.endswith(f"/extra/{INFO_FILE}") for n in z.namelist()):
            raise UserError(
                f"{path}: a zip file without raysearch's {INFO_FILE}; expected a TorchScript model "
                f"raysearch exported"
            )
    extra = {INFO_FILE: ""}
    try:
        with _quiet():  # torch.jit's deprecation notice: TorchScript is what was asked for
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as e:  # torch.jit raises its own types for what it cannot load
        reason = first_line(e)
        raise UserError(f"{path}: not a readable TorchScript model ({reason})") from None
    return module, json.loads(extra[INFO_FILE])


def _onnx_session(path: Path, threads: int):
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError(f"running an ONNX model needs onnxruntime: {DEPLOY_HINT}") from None
    ort.disable_telemetry_events()  # onnxruntime's usage events (Windows builds send them): off
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: its optimizer's notices are not the user's business
    if threads:
        options.intra_op_num_threads = options.inter_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own types for files that are not ONNX
        raise UserError(f"{path}: not a readable ONNX model ({first_line(e)})") from None
    props = session.get_modelmeta().custom_metadata_map
    if "raysearch" not in props:
        raise UserError(f"{path}: an ONNX model without raysearch's metadata; expected one it exported")
    return session, json.loads(props["raysearch"])
