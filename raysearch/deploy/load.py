"""`load_model(path)`: any raysearch model, a model folder (or a RUN_DIR holding one), an ONNX or a
.pt2 or TorchScript file; each has `predict(signals, metadata)`, leads, sampling_rate, window, classes.
"""

from __future__ import annotations

import os
from pathlib import Path

from raysearch.deploy.exported import ExportedModel
from raysearch.deploy.model import open_folder
from raysearch.errors import UserError


def load_model(path: str | os.PathLike, device: str = "cpu", precision: str = "", threads: int = 0):
    """Any raysearch model: a model folder (or a RUN_DIR with one), an exported ONNX or
    .pt2 or TorchScript file. All have `predict(signals, metadata)`, leads, sampling_rate, window, classes."""
    path = Path(path)
    if path.is_dir() or path.name == "model.pt":
        return open_folder(path, device, precision)
    if not path.is_file():
        raise UserError(
            f"{path}: no such file or folder; expected a model folder, an .onnx, a .pt2 or a TorchScript file"
        )
    return ExportedModel(path, threads)
