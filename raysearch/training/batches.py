"""Training batches: which records and crops an epoch visits, and the standardized samples.

An epoch's plan (`epoch_plan`) is drawn on the host from a generator seeded by (seed, epoch), so a
resumed trial visits exactly what an uninterrupted one would. On a GPU the whole plan goes to the
device in one copy and every batch is cut from device-resident samples (`Signals.crop`), so nothing
inside an epoch waits for the host; on a CPU batches are cut from the (memory-mapped) arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from raysearch.data.ptbxl import PTBXL


class Signals:
    """Standardized batches of PTB-XL signals, made on the training device.

    On a GPU (`resident`) the raw int16 samples (about 0.5 GB for PTB-XL at 100 Hz), the encoded
    metadata and the labels are copied to the device once, and each batch is indexed, cropped and
    standardized there (`crop`, no host synchronization, so it can be captured in a CUDA graph).
    On a CPU the batch is cut from the (memory-mapped) array, cropped before it is converted so only
    the kept samples are standardized. Both give the same numbers as `PTBXL.standardized` (same
    float32 operations, same order).
    """

    # on the device (resident: all of them; else only mean and std), filled by `load`
    signals: torch.Tensor
    baseline: torch.Tensor
    gain: torch.Tensor
    meta: torch.Tensor
    labels: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, data: PTBXL, device: torch.device, resident: bool | None = None):
        self.device = device
        self.resident = device.type == "cuda" if resident is None else resident
        self._lead_index: dict[tuple[int, ...], torch.Tensor] = {}
        self.load(data)

    def load(self, data: PTBXL) -> None:
        """Read `data` from now on. Its arrays go to the device into the tensors already there when
        there are some (a captured graph holds their addresses: a reused step must read this trial's
        data, not the last one's); the shapes must then be theirs."""
        self.data = data
        arrays = {"mean": data.mean, "std": data.std}
        if self.resident:
            arrays.update(
                signals=data.signals,
                baseline=data.baseline,
                gain=data.gain,
                meta=data.meta,
                labels=data.labels,
            )
        for name, array in arrays.items():  # np.array: a writable copy of a read-only memmap / Ray buffer
            tensor = torch.from_numpy(np.array(array))
            if name in self.__dict__:
                self.__dict__[name].copy_(tensor)
            else:
                setattr(self, name, tensor.to(self.device))

    def lead_index(self, leads: tuple[int, ...]) -> torch.Tensor:
        """`leads` as a device index tensor, made once (indexing with a list copies it every call)."""
        if leads not in self._lead_index:
            self._lead_index[leads] = torch.tensor(leads, dtype=torch.long, device=self.device)
        return self._lead_index[leads]

    def crop(self, rows: torch.Tensor, leads: tuple[int, ...], starts: torch.Tensor | None, length: int):
        """Device-resident form of `batch`: `rows` and `starts` are device tensors."""
        lead = self.lead_index(leads)
        x = self.signals.index_select(0, rows).index_select(1, lead).float()
        if starts is not None:
            idx = starts[:, None] + torch.arange(length, device=self.device)
            x = torch.gather(x, 2, idx[:, None, :].expand(-1, len(leads), -1))
        base = self.baseline.index_select(0, rows).index_select(1, lead)[:, :, None]
        gain = self.gain.index_select(0, rows).index_select(1, lead)[:, :, None]
        x = (x - base) / gain
        return (x - self.mean[lead][None, :, None]) / self.std[lead][None, :, None]

    def batch(
        self, rows: np.ndarray, leads: tuple[int, ...], starts: np.ndarray | None = None, length: int = 0
    ) -> torch.Tensor:
        """(len(rows), len(leads), length) float32 on the device; `starts`: each record's window
        start (None: the whole record)."""
        if self.resident:
            r = torch.from_numpy(np.asarray(rows)).to(self.device)
            s = None if starts is None else torch.from_numpy(np.asarray(starts)).to(self.device)
            return self.crop(r, tuple(leads), s, length)
        picked = list(leads)
        x = self.data.signals[rows][:, picked]
        if starts is not None:
            idx = starts[:, None] + np.arange(length)[None, :]
            x = np.take_along_axis(x, idx[:, None, :], axis=2)
        x = torch.from_numpy(x.astype(np.float32)).to(self.device)
        base = torch.from_numpy(self.data.baseline[rows][:, picked, None]).to(self.device)
        gain = torch.from_numpy(self.data.gain[rows][:, picked, None]).to(self.device)
        x = (x - base) / gain
        return (x - self.mean[picked][None, :, None]) / self.std[picked][None, :, None]


def crop_grid(total: int, length: int, positions: int) -> np.ndarray:
    """`positions` crop starts spread evenly over a record of `total` samples (the last crop ends
    at its end): the only crops a student trained against cached teacher embeddings sees."""
    return np.unique(np.linspace(0, max(0, total - length), positions).round().astype(np.int64))


@dataclass
class EpochPlan:
    """What one epoch visits, batch after batch: dataset rows, crop starts (None: whole records),
    grid positions (with a teacher cache) and weights (0 marks padding, see `epoch_plan`)."""

    rows: np.ndarray
    starts: np.ndarray | None
    positions: np.ndarray | None
    weights: np.ndarray
    batch_size: int
    records: int  # real records in the epoch (rows beyond them are padding)

    def batches(self):
        """(first, last) bounds of each batch."""
        n, b = len(self.rows), self.batch_size
        return [(s, min(s + b, n)) for s in range(0, n, b)]


def epoch_plan(
    train_rows: np.ndarray,
    rng: np.random.Generator,
    batch_size: int,
    total: int,
    length: int,
    grid: np.ndarray | None = None,
    pad: bool = False,
) -> EpochPlan:
    """The epoch's shuffle and random crops, drawn batch by batch from `rng`.

    Each batch's rows are sorted (faster reads from the memory map) and get one random crop start
    each, uniform over the record, or a uniform position on `grid`. `pad` (on a GPU: the CUDA-graph
    step's shapes are fixed, and the eager step does the same sums): a last partial batch is filled
    up with the epoch's first records at weight 0, so it runs the same captured step and those
    records do not count in the loss.
    """
    order = rng.permutation(train_rows)
    rows, starts, positions = [], [], []
    for s in range(0, len(order), batch_size):
        r = np.sort(order[s : s + batch_size])
        rows.append(r)
        if grid is not None:
            positions.append(rng.integers(0, len(grid), size=len(r)))
            starts.append(grid[positions[-1]])
        elif length < total:
            starts.append(rng.integers(0, total - length + 1, size=len(r)))
    weights = np.ones(len(order), np.float32)
    n_pad = (-len(order)) % batch_size if pad else 0
    if n_pad:  # np.resize repeats: an epoch smaller than one batch is filled up too
        rows.append(np.resize(rows[0], n_pad))
        starts += [np.resize(starts[0], n_pad)] if starts else []
        positions += [np.resize(positions[0], n_pad)] if positions else []
        weights = np.r_[weights, np.zeros(n_pad, np.float32)]
    return EpochPlan(
        rows=np.concatenate(rows),
        starts=np.concatenate(starts) if starts else None,
        positions=np.concatenate(positions) if positions else None,
        weights=weights,
        batch_size=batch_size,
        records=len(order),
    )
