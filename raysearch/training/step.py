"""One training step: forward, loss, backward and AdamW, run eagerly or replayed as one CUDA graph.

    loss = BCEWithLogits(logits, y) + alpha * sim(v12, vx),   v12 = frozen teacher, same crop
    sim:  l1     = mean |v12 - vx|              (mean absolute difference over batch and dims)
          l2     = mean (v12 - vx)^2            (mean squared difference)
          cosine = mean (1 - cos(v12, vx))     (per record, averaged over the batch)

A trial's network is small: eagerly, a GPU spends its time waiting for the host to launch hundreds
of small kernels. On CUDA (`graphs`) the whole step, batch cropping and loss sums included, is
captured once as a CUDA graph and replayed for every batch: static device buffers receive the
batch's row indices and crop starts, the learning rate and AdamW's beta1 live in device tensors the
schedule fills, and nothing in an epoch waits for the host. Shapes are fixed, so the epoch's last
partial batch is padded (batches.epoch_plan) and the padding weighted 0 in the loss. A process
keeps its last captured step (the kept step, once captured): the next trial of the same shapes
(Ray Tune's reused actors) loads its fresh weights, data and settings into it instead of
capturing again. With `graphs auto` a capture that fails (an operation a GPU or torch build cannot
capture, memory) says so in one line and the trial goes on eagerly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from raysearch.errors import first_line
from raysearch.training.batches import EpochPlan, Signals
from raysearch.training.device import autocast
from raysearch.training.embeddings import DeviceEmbeddings
from raysearch.training.models import ContrastiveNet

log = logging.getLogger(__name__)

WARMUP_STEPS = 3  # eager steps on a side stream before capture (allocator, cuBLAS/cuDNN workspaces)


def similarity(kind: str, v12: torch.Tensor, vx: torch.Tensor, weight: torch.Tensor | None = None):
    """The similarity loss between teacher and student embeddings: 0 when they are identical.
    `weight` (b,): per-record weights of a weighted mean (padding at 0)."""
    if kind == "l1":
        per = (v12 - vx).abs()
    elif kind == "l2":
        per = (v12 - vx) ** 2
    elif kind == "cosine":
        per = 1.0 - nn.functional.cosine_similarity(v12, vx, dim=1)
    else:
        raise ValueError(f"unknown similarity {kind!r}")
    if weight is None:
        return per.mean()
    per = per.mean(dim=1) if per.dim() == 2 else per
    return (per * weight).sum() / weight.sum()


class TrainStep:
    """forward + loss + backward + optimizer step of one stage; `sums` holds (loss, bce, sim)
    summed over the epoch's records, on the device, read once per epoch.

    `net` trains; `teacher` (student stage) is the frozen 12-lead teacher, or `cache` its embeddings
    precomputed on a crop grid. `graphed`: capture on the first batch, replay afterwards (CUDA,
    resident signals, the optimizer built by `make_optimizer(..., graphed=True)`); `fallback`: a
    capture that fails continues eagerly instead of raising (graphs auto). `reuse_key`: once
    captured, the step is kept under it for a later trial of this process (`kept_step`).
    """

    def __init__(
        self,
        net: ContrastiveNet,
        optimizer: torch.optim.Optimizer,
        signals: Signals,
        leads: tuple[int, ...],
        length: int,
        precision: str,
        sim: str,
        alpha: float,
        teacher: ContrastiveNet | None = None,
        cache: DeviceEmbeddings | None = None,
        graphed: bool = False,
        fallback: bool = False,
        reuse_key: tuple | None = None,
    ):
        self.net, self.optimizer, self.signals = net, optimizer, signals
        self.leads, self.length, self.precision, self.sim = tuple(leads), length, precision, sim
        self.teacher, self.cache, self.graphed = teacher, cache, graphed
        self.fallback, self.reuse_key = fallback, reuse_key
        self.device = signals.device
        self.bce = nn.BCEWithLogitsLoss()
        self.sums = torch.zeros(3, dtype=torch.float64, device=self.device)
        # alpha in a device tensor when graphed: a reused graph serves trials of any alpha
        self.alpha = torch.tensor(alpha, device=self.device) if graphed else alpha
        self.replay: Callable[[], None] | None = None  # the captured step, once captured
        self.static: dict[str, torch.Tensor | None] = {}  # the device buffers the graph reads
        self.plan: dict[str, torch.Tensor | np.ndarray | None] = {}

    # --------------------------------------------------------------------------- the math

    def _loss(self, rows, starts, positions, weight):
        """(loss, bce, sim) of one batch; rows/starts/positions are numpy on a CPU, device tensors
        when the signals are resident."""
        student = self.teacher is not None or self.cache is not None
        full = student and self.cache is None  # the teacher reads all 12 leads of the same crop
        crop_leads = tuple(range(12)) if full else self.leads
        length = self.length if starts is not None else 0
        s = self.signals
        if s.resident:
            x_all = s.crop(rows, crop_leads, starts, length)
            x = x_all.index_select(1, s.lead_index(self.leads)) if full else x_all
            meta, y = s.meta.index_select(0, rows), s.labels.index_select(0, rows)
        else:
            x_all = s.batch(rows, crop_leads, starts, length)
            x = x_all[:, list(self.leads)] if full else x_all
            meta = torch.from_numpy(s.data.meta[rows]).to(self.device)
            y = torch.from_numpy(s.data.labels[rows]).to(self.device)
        with autocast(self.precision, self.device, cache=not self.graphed):
            vx, logits = self.net(x, meta)
            if weight is None:
                loss_bce = self.bce(logits.float(), y)
            else:
                per = nn.functional.binary_cross_entropy_with_logits(logits.float(), y, reduction="none")
                loss_bce = (per.mean(dim=1) * weight).sum() / weight.sum()
            if not student:
                loss_sim = torch.zeros((), device=self.device)
            else:
                with torch.no_grad():
                    if self.cache is not None:
                        if not torch.is_tensor(positions):
                            positions = torch.from_numpy(positions).to(self.device)
                            rows = torch.from_numpy(rows).to(self.device)
                        v12 = self.cache.lookup(rows, positions)
                    else:
                        v12 = self.teacher.embed(x_all, meta)
                loss_sim = similarity(self.sim, v12.float(), vx.float(), weight)
            loss = loss_bce + self.alpha * loss_sim
        return loss, loss_bce, loss_sim

    def _step(self, rows, starts, positions, weight) -> None:
        loss, loss_bce, loss_sim = self._loss(rows, starts, positions, weight)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        count = len(rows) if weight is None else weight.sum()
        self.sums += torch.stack([loss, loss_bce, loss_sim]).detach().double() * count

    # ----------------------------------------------------------------------------- epochs

    def start_epoch(self, plan: EpochPlan) -> None:
        """Zero the sums; on a resident device, copy the epoch's plan there in one go."""
        self.sums.zero_()
        fields = {k: getattr(plan, k) for k in ("rows", "starts", "positions", "weights")}
        if self.signals.resident:
            fields = {k: v if v is None else torch.from_numpy(v).to(self.device) for k, v in fields.items()}
        self.plan = fields

    def __call__(self, first: int, last: int) -> None:
        """Train on the plan's batch [first, last)."""
        p = {k: None if v is None else v[first:last] for k, v in self.plan.items()}
        if self.graphed and self.replay is None:
            self._capture(p)  # with fallback, a failed capture leaves the step eager
        if not self.graphed:  # eager: on a CPU the partial last batch as it is, plain means; on a
            # GPU the padded plan with its weights, so that graphs change the speed, not the sums
            self._step(
                p["rows"], p["starts"], p["positions"], p["weights"] if self.signals.resident else None
            )
            return
        for k, v in p.items():
            if v is not None:
                self.static[k].copy_(v)  # type: ignore[union-attr,arg-type]  # device tensors (resident)
        self.replay()  # type: ignore[misc]  # set by _capture

    def _capture(self, p: dict) -> None:
        """Capture one step (capture_graph), then undo the warm-up's updates. A failure raises, or
        with `fallback` says why in one line and leaves the step eager; either way the weights,
        the optimizer and the sums are what they were, and the step is kept for reuse only once
        captured."""
        static = {k: None if v is None else v.clone() for k, v in p.items()}
        saved_net = {k: v.clone() for k, v in self.net.state_dict().items()}
        saved_opt = {q: {k: v.clone() for k, v in st.items()} for q, st in self.optimizer.state.items()}
        saved_sums = self.sums.clone()
        args = (static["rows"], static["starts"], static["positions"], static["weights"])
        try:
            replay = capture_graph(lambda: self._step(*args), self.device, WARMUP_STEPS)
        except Exception as e:
            if not self.fallback:
                raise
            reason = first_line(e)
            log.warning(
                f"graphs auto: capturing the training step failed ({reason}); this trial continues "
                f"eagerly (graphs off: same sums, slower)"
            )
            self.graphed = False
            replay = None
        with torch.no_grad():
            for k, v in self.net.state_dict().items():
                v.copy_(saved_net[k])
            for q, st in self.optimizer.state.items():
                for k, v in st.items():  # a state the warm-up created starts from zero, as AdamW's
                    if q in saved_opt:
                        v.copy_(saved_opt[q][k])
                    else:
                        v.zero_()
            self.sums.copy_(saved_sums)
        if replay is not None:
            self.static, self.replay = static, replay
            if self.reuse_key is not None:
                keep_step(self.reuse_key, self)

    def epoch_means(self, records: int) -> list[float]:
        """(loss, bce, sim) averaged over the epoch's records: the epoch's one host read."""
        return (self.sums / records).tolist()


def capture_graph(step: Callable[[], None], device: torch.device, warmup: int) -> Callable[[], None]:
    """`step` captured as one CUDA graph on `device` (after `warmup` eager calls on a side stream:
    allocator, cuBLAS/cuDNN workspaces); returns the graph's replay. Everything runs under
    `device`, and the capture gets a stream of that device: torch's default capture stream belongs
    to whichever device was current when it was first made, and a graph captured on another
    device's stream records nothing of this one's kernels. The CUDA random state is put back
    afterwards, so the warm-up's dropout masks are not the run's."""
    with torch.cuda.device(device):
        rng = torch.cuda.get_rng_state(device)
        try:
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                for _ in range(warmup):
                    step()
            torch.cuda.current_stream(device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=torch.cuda.Stream(device)):
                step()
        finally:
            torch.cuda.set_rng_state(rng, device)
    return graph.replay


_KEPT: dict = {}  # key -> the process's last graphed TrainStep (one: memory stays bounded)


def kept_step(key: tuple) -> TrainStep | None:
    """The process's last captured step if it was captured for `key`, else None (and it is freed)."""
    step = _KEPT.get(key)
    if step is None:
        _KEPT.clear()
    return step


def keep_step(key: tuple, step: TrainStep) -> None:
    _KEPT.clear()
    _KEPT[key] = step
