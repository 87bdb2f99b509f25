"""A trained model as one self-contained file for devices: ONNX (run with onnxruntime), torch.export's
.pt2 (run with torch.export.load) or TorchScript (deprecated upstream in favour of torch.export).

    export_model("runs/s/best/student-2", "onnx", "student-2.onnx")

The exported graph takes what a device has: the raw signal of the model's leads in mV at its
sampling rate, any length of at least one window (dynamic), and raw age (years), sex (0 male,
1 female), height (cm), weight (kg) with NaN for missing. Inside it: the training folds'
standardization, the metadata soft encoding (the code training uses) and the sliding windows
whose sigmoid outputs are averaged, computed in fp32. The file carries its leads, sampling rate,
window, classes, configuration and validation/test macro-AUC: ONNX metadata properties
(`raysearch` holds them all as JSON) or the .pt2 / TorchScript extra file `raysearch.json`. ONNX
needs the `deploy` extra (onnx, onnxscript, onnxruntime); .pt2 and TorchScript only torch.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from raysearch.data.metadata import encode_metadata_tensor
from raysearch.deploy.model import FolderModel, find_model_dir, open_folder
from raysearch.deploy.options import FORMATS
from raysearch.errors import UserError
from raysearch.files import write_with
from raysearch.training.operating import EPS

INFO_FILE = "raysearch.json"  # TorchScript extra file / ONNX metadata key "raysearch"


DEPLOY_HINT = "pip install 'raysearch[deploy]'"


class Portable(nn.Module):
    """inference.FolderModel's whole predict as one fp32 module of tensors: (signals, metadata) -> probs."""

    def __init__(self, model: FolderModel):
        super().__init__()
        self.net = copy.deepcopy(model.net).float().cpu().eval()
        self.register_buffer("mean", torch.tensor(model.mean)[:, None])
        self.register_buffer("std", torch.tensor(model.std)[:, None])
        self.window, self.stride = model.window, model.stride
        # the operating point's calibration, as FolderModel.predict applies it (1: none)
        temperatures = model.operating.temperatures if model.operating else [1.0] * len(model.classes)
        self.register_buffer("temperature", torch.tensor(temperatures, dtype=torch.float32))
        self.calibrated = model.operating is not None

    def forward(self, signals: torch.Tensor, metadata: torch.Tensor) -> torch.Tensor:
        probabilities = self._probabilities(signals, metadata)
        if not self.calibrated:
            return probabilities
        p = probabilities.clamp(EPS, 1 - EPS)
        return torch.sigmoid((torch.log(p) - torch.log(1 - p)) / self.temperature)

    def _probabilities(self, signals: torch.Tensor, metadata: torch.Tensor) -> torch.Tensor:
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


def _example(model: FolderModel, records: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
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
    model = open_folder(model_dir, precision="fp32")
    portable = Portable(model).eval()
    example = _example(model)

    def write(tmp: Path) -> None:
        with torch.no_grad(), _quiet():
            if fmt == "onnx":
                _export_onnx(portable, example, model, tmp)
            elif fmt == "pt2":
                program = _exported_program(portable, example, model)
                torch.export.save(program, str(tmp), extra_files={INFO_FILE: json.dumps(model.info)})
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


def _dynamic_shapes(model: FolderModel) -> dict:
    """Any number of records, and any record length from one window on."""
    records = torch.export.Dim("records")
    samples = torch.export.Dim("samples", min=max(model.window, 1))
    return {"signals": {0: records, 2: samples}, "metadata": {0: records}}


def _exported_program(portable: Portable, example: tuple, model: FolderModel):
    """torch.export's program of the portable module, valid for every shape _dynamic_shapes allows.
    Size-oblivious reasoning keeps the example's sizes (2 records, a few windows) from becoming
    guards: without it one record, or a record under two windows, would be refused."""
    import torch.fx.experimental._config as fx_config

    with fx_config.patch(backed_size_oblivious=True):
        return torch.export.export(portable, example, dynamic_shapes=_dynamic_shapes(model))


def _export_onnx(portable: Portable, example: tuple, model: FolderModel, out: Path) -> None:
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch.onnx's exporter needs it)
    except ImportError:
        raise UserError(f"ONNX export needs onnx and onnxscript: {DEPLOY_HINT}") from None
    program = torch.onnx.export(
        portable,
        example,
        input_names=["signals", "metadata"],
        output_names=["probabilities"],
        dynamic_shapes=_dynamic_shapes(model),
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
