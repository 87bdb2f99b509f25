"""What export and predict are asked: plain data, light to import (the CLI builds its --help from
these)."""

from __future__ import annotations

from dataclasses import dataclass, field

# what `export` writes: ONNX, torch.export's .pt2, and TorchScript (deprecated upstream in favour of
# torch.export; kept for runtimes that still load only TorchScript)
FORMATS = ("onnx", "pt2", "torchscript")


@dataclass
class PredictOptions:
    """What `predict` reads and writes (the command line's options)."""

    model: str = ""
    records: list[str] = field(default_factory=list)
    data: str | None = None  # a PTB-XL folder instead of records
    folds: str = ""  # with data: e.g. "10" or "9,10"; empty: every fold
    metadata: str | None = None  # CSV keyed by record; with data, default its database csv
    out: str | None = None  # .csv, or .jsonl/.json for JSON lines; None: nothing written
    precision: str | None = None  # a model folder's autocast precision (None: its training precision)
    threads: int = 0  # onnxruntime threads (0: its default)
