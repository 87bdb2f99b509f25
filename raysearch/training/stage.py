"""One stage trained, without Ray: the Ray Tune trainable calls exactly this code.

    teacher = train_stage(TrainConfig(stage="teacher"), data)                       # 12 leads
    student = train_stage(TrainConfig(stage="student", leads="4", alpha=1.0, sim="cosine"),
                          data, teacher=teacher.export())                           # pseudo = True
    base = train_stage(TrainConfig(stage="baseline", leads="4"), data)               # pseudo = False

Student and baseline are one code path: the same network over the chosen leads; the student
additionally gets the teacher's pseudo-classifier (frozen) and the similarity term (step.py).
Training follows the PTB-XL benchmark's recipe: random 2.5 s crops, AdamW with a one-cycle (or
cosine) schedule, bfloat16 autocast optional; the validation fold is evaluated every epoch.
"""

from __future__ import annotations

import copy
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from functools import partial

import numpy as np
import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from raysearch.data.ptbxl import PTBXL
from raysearch.errors import UserError
from raysearch.training.batches import Signals, epoch_plan
from raysearch.training.checkpoint import (
    SavedNetwork,
    StageResult,
    check_teacher,
    data_stats,
    import_net,
)
from raysearch.training.config import TRAIN_PRECISIONS, TrainConfig, crop_length
from raysearch.training.device import pick_device, use_graphs
from raysearch.training.embeddings import TeacherEmbeddings, check_embeddings, embed_training_records
from raysearch.training.evaluation import evaluate
from raysearch.training.models import ContrastiveNet, ModelConfig
from raysearch.training.optimizer import (
    BETAS,
    CapturableAdamW,
    load_optimizer_state,
    make_optimizer,
    portable_optimizer_state,
)
from raysearch.training.step import TrainStep, kept_step

log = logging.getLogger(__name__)

EpochCallback = Callable[[dict, Callable[[], dict]], "bool | None"]


def _frozen(net: nn.Module) -> nn.Module:
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def train_stage(
    cfg: TrainConfig,
    data: PTBXL,
    teacher: SavedNetwork | None = None,
    on_epoch: EpochCallback | None = None,
    resume: dict | None = None,
    progress: bool = False,
    cache: TeacherEmbeddings | None = None,
) -> StageResult:
    """Train one stage. `teacher` is required for the student stage; `cache`
    (`embed_training_records(teacher, ...)`) replaces the teacher's forward when `cfg.teacher_cache`
    asks for it (computed here if not given).

    After every epoch `on_epoch(metrics, state)` is called; `state()` returns everything needed to
    resume (model, optimizer, scheduler, epoch, history) for a checkpoint, and a True return stops
    training. `resume` is such a state: training continues after its epoch, bit-for-bit on a CPU as
    if it had not stopped (the shuffle and crops of epoch e are seeded by (seed, e)).
    """
    started = time.perf_counter()
    cfg = cfg.resolved()
    device = _device_for(cfg)
    torch.manual_seed(cfg.seed)
    net = ContrastiveNet(ModelConfig.of(cfg)).to(device)
    teacher_net, cache = _teacher_for(cfg, net, data, teacher, cache, device, progress)
    step = build_step(cfg, data, device, net, teacher_net, cache, use_graphs(cfg, device))
    net, optimizer = step.net, step.optimizer
    scheduler = _schedule(optimizer, cfg, len(data.split("train")))
    history, first_epoch = _resumed(resume, net, optimizer, scheduler)
    setup: list[float] = []  # seconds until the first step was done (model, data upload, capture)
    for epoch in range(first_epoch, cfg.epochs):
        metrics = _train_epoch(cfg, data, step, scheduler, epoch, started, setup, progress)
        history.append(metrics)
        state = partial(_state, cfg, data, step, scheduler, history, epoch)
        if on_epoch is not None and on_epoch(metrics, state):
            break
    # a kept step trains the next trial of this process: the caller gets a copy of its network
    return StageResult(cfg, copy.deepcopy(net) if step.replay else net, history, device, data_stats(data))


def _device_for(cfg: TrainConfig) -> torch.device:
    """The stage's device, made current; its threads; fp16 refused (it would need loss scaling)."""
    if cfg.precision not in TRAIN_PRECISIONS:
        raise UserError(
            f"precision {cfg.precision}: training in fp16 needs loss scaling, which raysearch does not do; "
            f"expected {' or '.join(TRAIN_PRECISIONS)} (bf16 is as fast on GPUs that have it)"
        )
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    if device.type == "cuda":  # this trial's device current (cuda:N), its own memory peak
        torch.cuda.set_device(device)
        torch.cuda.reset_peak_memory_stats(device)
    return device


def _teacher_for(cfg, net, data, teacher, cache, device, progress) -> tuple:
    """A student's frozen teacher (and its pseudo-classifier copied into `net`, frozen) and its
    cached embeddings when `teacher_cache` asks for them; (None, None) for other stages."""
    if cfg.stage != "student":
        return None, None
    if teacher is None:
        raise UserError("the student stage needs a teacher checkpoint (--teacher), or use --baseline")
    check_teacher(teacher, "teacher", cfg.embedding_size)
    teacher_net = _frozen(import_net(teacher, "teacher").to(device).eval())
    net.classifier.load_state_dict(teacher_net.classifier.state_dict())  # type: ignore[union-attr]
    _frozen(net.classifier)  # the pseudo-classifier stays the teacher's
    if not cfg.teacher_cache:
        return teacher_net, None
    if cache is None:
        log.info(f"computing the teacher's embeddings at {cfg.teacher_cache} crops per record")
        cache = embed_training_records(teacher, data, cfg)
    check_embeddings(cache, cfg, data)
    return teacher_net, cache


def _schedule(optimizer: torch.optim.Optimizer, cfg: TrainConfig, records: int) -> LRScheduler:
    """The learning-rate schedule over every step of the stage, on an optimizer made fresh (float
    lr and betas, no earlier schedule: a kept step's optimizer served another trial)."""
    for group in optimizer.param_groups:
        group["lr"], group["betas"] = cfg.lr, BETAS
        group.pop("initial_lr", None)
    steps = cfg.epochs * max(1, math.ceil(records / cfg.batch_size))
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=steps)
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)


def _resumed(resume: dict | None, net, optimizer, scheduler) -> tuple[list[dict], int]:
    """The history so far and the first epoch to train: a checkpoint's, or a fresh start."""
    load_optimizer_state(optimizer, None)  # a kept step's moments start from zero
    if resume is not None:
        net.load_state_dict(resume["model"])
        load_optimizer_state(optimizer, resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
    if isinstance(optimizer, CapturableAdamW):
        optimizer.keep_tensor_hyperparameters()
    return ([], 0) if resume is None else (list(resume["history"]), int(resume["epoch"]) + 1)


def _train_epoch(cfg, data, step: TrainStep, scheduler, epoch: int, started: float, setup, progress) -> dict:
    """One epoch: its plan (seeded by (seed, epoch)), every batch, then validation; its metrics."""
    t0 = time.perf_counter()
    rng = np.random.default_rng([cfg.seed, epoch])
    torch.manual_seed(cfg.seed * 1000 + epoch)
    net, signals, device = step.net, step.signals, step.device
    grid = None if step.cache is None else step.cache.grid
    # padded where batches are cut on the device (a GPU), eager or graphed alike (a graph's shapes
    # are fixed; eager does the same sums, so `graphs` changes the speed only); a CPU's plan is
    # what it always was
    total, length = data.signals.shape[2], crop_length(cfg, data)
    plan = epoch_plan(
        data.split("train"), rng, cfg.batch_size, total, length, grid=grid, pad=signals.resident
    )
    net.train()
    if cfg.stage == "student":
        net.classifier.eval()  # frozen: no dropout either, it is the teacher's function
    step.start_epoch(plan)
    batches = plan.batches()
    if progress:
        from tqdm import tqdm

        what = f"{cfg.stage} epoch {epoch + 1}/{cfg.epochs}"
        batches = tqdm(batches, desc=what, unit="batch", leave=False, file=sys.stderr)
    for first, last in batches:
        step(first, last)
        if not setup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            setup.append(time.perf_counter() - started)
        scheduler.step()
        if isinstance(step.optimizer, CapturableAdamW):
            step.optimizer.keep_tensor_hyperparameters()
    train_loss, bce_loss, sim_loss = step.epoch_means(plan.records)
    train_seconds = time.perf_counter() - t0
    val = evaluate(net, signals, "val", cfg)
    metrics = {
        "epoch": epoch + 1,
        "train_loss": train_loss,
        "bce_loss": bce_loss,
        "sim_loss": sim_loss,
        "val_macro_auc": val["macro_auc"],
        **{f"val_auc_{c}": a for c, a in val["per_class_auc"].items()},
        "lr": float(step.optimizer.param_groups[0]["lr"]),
        "train_seconds": train_seconds,
        "epoch_seconds": time.perf_counter() - t0,
        "samples_per_s": plan.records / train_seconds,
        "setup_seconds": setup[0] if setup else None,
        "graphs": step.graphed,  # False after a capture that failed under graphs auto
    }
    if device.type == "cuda":  # what --gpus-per-trial must leave room for (plus the CUDA context)
        metrics["gpu_max_allocated_MiB"] = torch.cuda.max_memory_allocated(device) / 2**20
    if progress:
        print(
            f"{cfg.stage} epoch {epoch + 1}/{cfg.epochs}: loss {metrics['train_loss']:.4f} "
            f"val macro-AUC {metrics['val_macro_auc']:.4f} ({metrics['epoch_seconds']:.0f} s, "
            f"{metrics['samples_per_s']:.0f} samples/s)",
            file=sys.stderr,
        )
    return metrics


def _state(cfg, data, step: TrainStep, scheduler, history: list, epoch: int) -> dict:
    """Everything a checkpoint needs to resume the stage after `epoch`."""
    return {
        "model": {k: v.clone() for k, v in step.net.state_dict().items()},
        "optimizer": portable_optimizer_state(step.optimizer),
        "scheduler": scheduler.state_dict(),
        "epoch": epoch,
        "history": history,
        "config": asdict(cfg),
        "model_config": step.net.cfg.to_dict(),
        "data": data_stats(data),
    }


def build_step(
    cfg: TrainConfig,
    data: PTBXL,
    device: torch.device,
    net: ContrastiveNet,
    teacher_net: ContrastiveNet | None,
    cache: TeacherEmbeddings | None,
    graphed: bool,
) -> TrainStep:
    """The stage's TrainStep. Graphed, the process's last captured step is reused when everything
    its graph bakes in matches (shapes, settings the kernels take as constants, the networks'
    architectures): this trial's fresh weights, teacher, cached embeddings, data and alpha are
    copied into the tensors the graph reads, so it is not captured again (Ray Tune's reused actors
    run trial after trial)."""
    teacher_net = None if cache is not None else teacher_net  # the cache replaces its forward
    length = crop_length(cfg, data)
    key: tuple | None = None
    if graphed:
        key = (str(device), cfg.stage, cfg.leads, cfg.batch_size, length, cfg.precision, cfg.sim)
        key += (cfg.weight_decay, repr(net.cfg), None if teacher_net is None else repr(teacher_net.cfg))
        key += (data.signals.shape, data.meta.shape)
        if cache is not None:
            key += (cache.embeddings.shape, cache.dtype, int(cache.rows.max()) + 1)
    step = kept_step(key) if key is not None else None
    if step is not None:  # the same key: the same teacher architecture and embeddings' shapes
        with torch.no_grad():
            step.net.load_state_dict(net.state_dict())
            if step.teacher is not None and teacher_net is not None:
                step.teacher.load_state_dict(teacher_net.state_dict())
            if step.cache is not None and cache is not None:
                step.cache.load(cache)
            step.signals.load(data)
            assert isinstance(step.alpha, torch.Tensor)  # a graphed step's alpha is a device tensor
            step.alpha.fill_(cfg.alpha)
        return step
    params = [p for p in net.parameters() if p.requires_grad]
    return TrainStep(
        net,
        make_optimizer(params, cfg.lr, cfg.weight_decay, graphed),
        Signals(data, device, resident=True if graphed else None),  # a graph reads device tensors
        cfg.lead_indices,
        length,
        cfg.precision,
        cfg.sim,
        cfg.alpha,
        teacher=teacher_net,
        cache=None if cache is None else cache.on(device),
        graphed=graphed,
        fallback=cfg.graphs == "auto",
        reuse_key=key,
    )
