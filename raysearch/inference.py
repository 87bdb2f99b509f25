"""A trained model for new ECGs: raw signals in mV and raw metadata in, class probabilities out.

    model = load_model("runs/search-4/best/student-4")     # any RUN_DIR with model.pt + config.json
    p = model.predict(signals, metadata)    # signals (n, len(model.leads), T) mV at model.sampling_rate,
                                            # T >= model.window; metadata (n, 4) age, sex, height,
                                            # weight (NaN = missing); p (n, 5) over model.classes

Inside, exactly what evaluation does in training (train.window_scores): standardization with the
training folds' per-lead mean and std, the metadata soft encoding, sliding windows whose sigmoid
outputs are averaged per record.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from raysearch.checkpoint import import_net, load_checkpoint
from raysearch.errors import UserError
from raysearch.metadata import encode_metadata
from raysearch.train import TrainConfig, pick_device, window_geometry, window_scores
from raysearch.vocabulary import CLASSES, LEADS


class Model:
    """One trained network (teacher, student or baseline) with what it needs to read new ECGs."""

    def __init__(self, blob: dict, source: str = "checkpoint", device: str = "cpu"):
        if not blob.get("data"):
            raise UserError(
                f"{source}: no standardization statistics in config.json (written by an older "
                f"raysearch); expected a checkpoint that records its training data's mean and std"
            )
        self.config = TrainConfig(**blob["config"]).resolved()
        self.device = pick_device(device)
        self.net = import_net(blob, source).to(self.device).eval()
        self.leads = tuple(LEADS[i] for i in self.config.lead_indices)
        self.sampling_rate = int(blob["data"]["sampling_rate"])
        idx = list(self.config.lead_indices)
        self.mean = np.asarray(blob["data"]["mean"], dtype=np.float32)[idx]
        self.std = np.asarray(blob["data"]["std"], dtype=np.float32)[idx]
        self.classes = CLASSES
        self.window = int(self.config.crop_seconds * self.sampling_rate) if self.config.crop_seconds else 0

    def predict(self, signals, metadata=None, batch_records: int = 64) -> np.ndarray:
        """Class probabilities (n, 5) of `signals` (n, leads, T) in mV; `metadata` (n, 4) or None."""
        x = np.asarray(signals, dtype=np.float32)
        if x.ndim != 3 or x.shape[1] != len(self.leads):
            raise UserError(
                f"signals of shape {x.shape}: expected (records, {len(self.leads)} leads "
                f"({','.join(self.leads)}), samples)"
            )
        if x.shape[2] < max(self.window, 1):
            raise UserError(
                f"{x.shape[2]} samples per record: expected at least one window of {self.window} "
                f"({self.config.crop_seconds} s at {self.sampling_rate} Hz)"
            )
        meta = (
            np.full((len(x), 4), np.nan, np.float32) if metadata is None else np.asarray(metadata, np.float32)
        )
        if meta.shape != (len(x), 4):
            raise UserError(
                f"metadata of shape {meta.shape}: expected ({len(x)}, 4) age, sex, height, weight"
            )
        x = (x - self.mean[None, :, None]) / self.std[None, :, None]
        encoded = encode_metadata(*meta.T)
        length, starts = window_geometry(self.config, self.sampling_rate, x.shape[2])
        out = np.zeros((len(x), len(CLASSES)), dtype=np.float32)
        for s in range(0, len(x), batch_records):
            xb = torch.from_numpy(x[s : s + batch_records]).to(self.device)
            mb = torch.from_numpy(encoded[s : s + batch_records]).to(self.device)
            out[s : s + len(xb)] = window_scores(self.net, xb, mb, self.config, length, starts)
        return out


def load_model(path: str | os.PathLike, device: str = "cpu") -> Model:
    """The model saved in a RUN_DIR (model.pt + config.json), e.g. RUN_DIR/best/student-4."""
    return Model(load_checkpoint(path), str(path), device)
