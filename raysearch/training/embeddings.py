"""The teacher's cached embeddings (`teacher_cache: P`): the frozen teacher's embedding of every
training record at P crop starts spread over the record, computed once per teacher and read by
every student in place of the teacher's forward (its random crops then start on that grid).

    cached = embed_training_records(teacher, data, cfg)   # TeacherEmbeddings: numpy, zero-copy via Ray
    on_gpu = cached.on(device)                           # DeviceEmbeddings: lookup(rows, positions)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from raysearch.data.ptbxl import PTBXL
from raysearch.errors import UserError
from raysearch.training.batches import Signals, crop_grid
from raysearch.training.checkpoint import (
    SavedNetwork,
    import_net,
)
from raysearch.training.config import TrainConfig, crop_length
from raysearch.training.device import autocast, pick_device


@dataclass
class TeacherEmbeddings:
    """The frozen teacher's embedding of every training record at every crop start of `grid`,
    computed once per teacher (train.teacher_cache) and read by every student trial in place of the
    teacher's forward. Plain numpy (bfloat16 kept as its 16 bits) so it goes zero-copy through
    Ray's object store like the teacher itself."""

    grid: np.ndarray  # (P,) crop starts, samples
    length: int  # crop length, samples
    rows: np.ndarray  # (n,) the dataset rows embedded, ascending
    embeddings: np.ndarray  # (n, P, E) float32, or uint16 holding bfloat16
    dtype: str  # "float32" | "bfloat16"

    def on(self, device: torch.device) -> DeviceEmbeddings:
        return DeviceEmbeddings(self, device)


class DeviceEmbeddings:
    """A TeacherEmbeddings on the training device: `lookup(rows, positions)` -> (b, E) float32."""

    def __init__(self, cache: TeacherEmbeddings, device: torch.device):
        self.device, self.grid = device, cache.grid
        self.embeddings, self.index = self._tensors(cache)

    def _tensors(self, cache: TeacherEmbeddings) -> tuple[torch.Tensor, torch.Tensor]:
        emb = torch.from_numpy(np.array(cache.embeddings))  # writable: a Ray buffer is read-only
        if cache.dtype == "bfloat16":
            emb = emb.view(torch.bfloat16)
        rows = int(cache.rows.max()) + 1 if len(cache.rows) else 0
        index = np.full(rows, -1, np.int64)
        index[cache.rows] = np.arange(len(cache.rows))
        return emb.to(self.device), torch.from_numpy(index).to(self.device)

    def load(self, cache: TeacherEmbeddings) -> None:
        """Read `cache` from now on, copied into the tensors a captured graph holds (same shapes)."""
        embeddings, index = self._tensors(cache)
        self.grid = cache.grid
        self.embeddings.copy_(embeddings)
        self.index.copy_(index)

    def lookup(self, rows: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.embeddings[self.index[rows], positions].float()


def teacher_source(cfg: TrainConfig) -> str:
    """How a student sees its teacher, in words (the search's opening lines, the report header)."""
    if cfg.teacher_cache:
        return f"its embeddings cached at {cfg.teacher_cache} crop positions (teacher_cache)"
    return "its forward on every crop (teacher_cache 0)"


@torch.no_grad()
def embed_training_records(
    teacher: SavedNetwork, data: PTBXL, cfg: TrainConfig, batch_records: int | None = None
) -> TeacherEmbeddings:
    """The teacher's embedding (eval mode, `cfg`'s precision) of every training record at
    `cfg.teacher_cache` crop starts spread over the record: what a student trial with that setting
    reads instead of running the teacher (same numbers as the teacher's forward on those crops)."""
    cfg = cfg.resolved()
    device = pick_device(cfg.device)
    net = import_net(teacher, "teacher").to(device).eval()
    signals = Signals(data, device)
    total, length = data.signals.shape[2], crop_length(cfg, data)
    grid = crop_grid(total, length, max(1, cfg.teacher_cache))
    rows = data.split("train")
    batch_records = batch_records or (64 if device.type == "cuda" else 32)  # x P windows a forward
    out = None
    for s in range(0, len(rows), batch_records):
        r = rows[s : s + batch_records]
        x = signals.batch(r, tuple(range(12)))
        meta = torch.from_numpy(data.meta[r]).to(device)
        windows = torch.cat([x[:, :, a : a + length] for a in grid])  # (P*b, 12, length)
        with autocast(cfg.precision, device):
            v = net.embed(windows, meta.repeat(len(grid), 1))
        v = v.reshape(len(grid), len(r), -1).transpose(0, 1)  # (b, P, E)
        if out is None:
            out = torch.empty((len(rows), len(grid), v.shape[-1]), dtype=v.dtype)
        out[s : s + len(r)] = v.cpu()
    del net, signals
    assert out is not None, "no training records to embed"
    if device.type == "cuda":  # the training that follows in this process gets the memory back
        torch.cuda.empty_cache()
    if out.dtype == torch.bfloat16:
        return TeacherEmbeddings(grid, length, rows, out.view(torch.uint16).numpy(), "bfloat16")
    return TeacherEmbeddings(grid, length, rows, out.float().numpy(), "float32")


def check_embeddings(cache: TeacherEmbeddings, cfg: TrainConfig, data: PTBXL) -> None:
    """A given teacher cache must hold the crops this student trains on."""
    length = crop_length(cfg, data)
    if cache.length != length or not np.array_equal(
        cache.grid, crop_grid(data.signals.shape[2], length, cfg.teacher_cache)
    ):
        raise UserError(
            f"teacher cache of {len(cache.grid)} crops of {cache.length} samples: this student "
            f"asks for {cfg.teacher_cache} crops of {length}"
        )
