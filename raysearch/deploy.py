"""A trained model as one self-contained file for devices: ONNX (run with onnxruntime) or TorchScript.

    export_model("runs/s/best/student-2", "onnx", "student-2.onnx")
    model = load_model("student-2.onnx")         # also a TorchScript file or a model folder
    p = model.predict(signals_mV, metadata)      # as inference.Model.predict: (n, 5) probabilities

The exported graph takes what a device has: the raw signal of the model's leads in mV at its
sampling rate, any length of at least one window (dynamic), and raw age (years), sex (0 male,
1 female), height (cm), weight (kg) with NaN for missing. Inside it: the training folds'
standardization, the metadata soft encoding (metadata.encode_metadata_tensor, the code training
uses) and the sliding windows whose sigmoid outputs are averaged (train.window_scores' windows:
side by side, the last one ending at the record's end), computed in fp32. The file carries its
leads, sampling rate, window, classes, configuration and validation/test macro-AUC: ONNX metadata
properties (`raysearch` holds them all as JSON) or the TorchScript extra file `raysearch.json`.

ONNX needs the `deploy` extra (onnx, onnxscript, onnxruntime); TorchScript only torch.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from raysearch.errors import UserError, first_line
from raysearch.files import write_with
from raysearch.inference import Model, check_inputs, find_model_dir
from raysearch.inference import load_model as load_checkpoint_model
from raysearch.metadata import encode_metadata_tensor

FORMATS = ("onnx", "torchscript")
INFO_FILE = "raysearch.json"  # TorchScript extra file / ONNX metadata key "raysearch"
DEPLOY_HINT = "pip install 'raysearch[deploy]'"


class Portable(nn.Module):
    """inference.Model's whole predict as one fp32 module of tensors: (signals, metadata) -> probs."""

    def __init__(self, model: Model):
        super().__init__()
        self.net = copy.deepcopy(model.net).float().cpu().eval()
        self.register_buffer("mean", torch.tensor(model.mean)[:, None])
        self.register_buffer("std", torch.tensor(model.std)[:, None])
        self.window, self.stride = model.window, model.stride

    def forward(self, signals: torch.Tensor, metadata: torch.Tensor) -> torch.Tensor:
        x = (signals - self.mean) / self.std
        meta = encode_metadata_tensor(metadata)
        if not self.window:  # trained on whole records: the record is the one window
            return torch.sigmoid(self.net(x, meta)[1])
        n, leads, total = x.shape
        last = total - self.window
        regular = torch.arange(0, last + 1, self.stride)
        # The last window ends at the record's end; weighted 0 where a regular one already does,
        # so the graph has no data-dependent shape and any length exports.
        tail = regular[-1:] * 0 + last
        starts = torch.cat([regular, tail])
        weight = torch.cat([torch.ones_like(regular), (tail != regular[-1:]).long()]).to(x.dtype)
        idx = starts[:, None] + torch.arange(self.window)[None, :]  # (W, window)
        windows = x[:, :, idx].permute(0, 2, 1, 3).reshape(-1, leads, self.window)  # (n*W, L, window)
        meta = meta[:, None, :].expand(-1, starts.shape[0], -1).reshape(windows.shape[0], -1)
        probs = torch.sigmoid(self.net(windows, meta)[1]).reshape(n, starts.shape[0], -1)
        return (probs * weight[None, :, None]).sum(dim=1) / weight.sum()


def _example(model: Model, records: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs to trace with: random signals a little over two windows long, mixed metadata."""
    samples = max(model.window, model.sampling_rate) * 2 + 7
    g = torch.Generator().manual_seed(0)
    signals = torch.randn(records, len(model.leads), samples, generator=g) * 0.3
    metadata = torch.tensor([[60.0, 0.0, float("nan"), 80.0], [35.0, 1.0, 165.0, float("nan")]])
    return signals, metadata[:records]


def export_model(source: str | os.PathLike, fmt: str, out: str | os.PathLike, force: bool = False) -> Path:
    """Export the model in `source` (a model folder or a RUN_DIR with one) to `out` as `fmt`.
    An existing `out` is replaced only with `force`, and never inside a model folder."""
    if fmt not in FORMATS:
        raise UserError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.is_dir():
        raise UserError(f"{out}: a directory; expected the path of the file to write")
    if not out.parent.is_dir():
        raise UserError(f"{out.parent}: no such directory to write {out.name} into")
    model_dir = find_model_dir(source).resolve()
    inside = out.resolve().is_relative_to(model_dir) or (out.parent / "model.pt").is_file()
    if inside or out.name in ("model.pt", "config.json", "metrics.json"):
        raise UserError(
            f"--out {out}: inside a model folder ({out.resolve().parent}); expected a path outside it "
            f"(a model folder's files are its own)"
        )
    if out.exists() and not force:
        raise UserError(f"--out {out}: exists; pass --force to replace it")
    model = load_checkpoint_model(model_dir, precision="fp32")
    portable = Portable(model).eval()
    example = _example(model)

    def write(tmp: Path) -> None:
        with torch.no_grad(), _quiet():
            if fmt == "onnx":
                _export_onnx(portable, example, model, tmp)
            else:
                traced = torch.jit.trace(portable, example, check_trace=False)
                torch.jit.save(traced, str(tmp), _extra_files={INFO_FILE: json.dumps(model.info)})

    return write_with(out, write)  # a half-written file never takes the name


@contextlib.contextmanager
def _quiet():
    """The exporters' notices (trace constants, torchvision ops, renamed axes) are not the user's:
    a wrong export shows in the agreement checks the tests run, not in these warnings."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _export_onnx(portable: Portable, example: tuple, model: Model, out: Path) -> None:
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch.onnx's exporter needs it)
    except ImportError:
        raise UserError(f"ONNX export needs onnx and onnxscript: {DEPLOY_HINT}") from None
    records = torch.export.Dim("records")
    samples = torch.export.Dim("samples", min=max(model.window, 1))
    program = torch.onnx.export(
        portable,
        example,
        input_names=["signals", "metadata"],
        output_names=["probabilities"],
        dynamic_shapes={"signals": {0: records, 2: samples}, "metadata": {0: records}},
        dynamo=True,
        external_data=False,
        verbose=False,
    )
    proto = program.model_proto
    info = model.info
    readable = {k: info[k] for k in ("leads", "sampling_rate", "window", "classes", "stage")}
    for key, value in {INFO_FILE.split(".")[0]: info, **readable}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value)
    onnx.save(proto, str(out))


class ExportedModel:
    """An exported file, run with onnxruntime (ONNX) or torch.jit (TorchScript), with the same
    `predict(signals, metadata)` and attributes (leads, sampling_rate, window, classes, info)."""

    def __init__(self, path: str | os.PathLike, threads: int = 0):
        self.path = Path(path)
        if _is_zip(self.path):  # TorchScript files are zip archives; ONNX files are not
            self._module, self.info = _torchscript(self.path)
            self.format = "torchscript"
        else:
            self._session, self.info = _onnx_session(self.path, threads)
            self.format = "onnx"
        self.leads = tuple(self.info["leads"])
        self.sampling_rate = int(self.info["sampling_rate"])
        self.window = int(self.info["window"])
        self.classes = tuple(self.info["classes"])

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


def _is_zip(path: Path) -> bool:
    """A zip archive, whole or truncated (its first bytes say so even when its end is gone)."""
    with open(path, "rb") as fh:
        return fh.read(4) == b"PK\x03\x04"


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


def load_model(path: str | os.PathLike, device: str = "cpu", precision: str = "", threads: int = 0):
    """Any raysearch model: a model folder (or a RUN_DIR with one), an exported ONNX or
    TorchScript file. All have `predict(signals, metadata)`, leads, sampling_rate, window, classes."""
    path = Path(path)
    if path.is_dir() or path.name == "model.pt":
        return load_checkpoint_model(path, device, precision)
    if not path.is_file():
        raise UserError(
            f"{path}: no such file or folder; expected a model folder, an .onnx or a TorchScript file"
        )
    return ExportedModel(path, threads)
