"""The two training stages, without Ray: the Ray Tune trainable calls exactly this code.

    teacher = train_stage(TrainConfig(stage="teacher"), data)                       # 12 leads
    student = train_stage(TrainConfig(stage="student", leads="4", alpha=1.0, sim="cosine"),
                          data, teacher=teacher.export())                           # pseudo = True
    base = train_stage(TrainConfig(stage="baseline", leads="4"), data)               # pseudo = False

Student and baseline are one code path: the same network over the chosen leads; the student
additionally gets the teacher's pseudo-classifier (frozen) and the similarity term

    loss = BCEWithLogits(logits, y) + alpha * sim(v12, vx),   v12 = frozen teacher, same crop
    sim:  l1     = mean |v12 - vx|              (mean absolute difference over batch and dims)
          l2     = mean (v12 - vx)^2            (mean squared difference)
          cosine = mean (1 - cos(v12, vx))     (per record, averaged over the batch)

Training follows the PTB-XL benchmark's recipe: random 2.5 s crops, and at evaluation the
sigmoid outputs of sliding windows averaged per record. AdamW with a one-cycle (or cosine)
schedule; bfloat16 autocast optional. The validation fold (9) is evaluated every epoch; the test
fold (10) only when the caller asks for the final figures.
"""

from __future__ import annotations

import copy
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from raysearch.batches import Signals, TeacherCache, crop_grid, epoch_plan
from raysearch.checkpoint import (
    check_teacher,
    data_stats,
    export_net,
    import_net,
    load_teacher,
    save_checkpoint,
)
from raysearch.data import PTBXL, RECORD_SECONDS, require_answerable
from raysearch.errors import UserError
from raysearch.files import write_text, write_with
from raysearch.metrics import bootstrap_ci, macro_auc, per_class_auc
from raysearch.models import ARCHS, ContrastiveNet, ModelConfig
from raysearch.sources import DataOptions, open_dataset
from raysearch.step import (
    BETAS,
    CapturableAdamW,
    TrainStep,
    autocast,
    load_optimizer_state,
    make_optimizer,
    portable_optimizer_state,
    reusable,
)
from raysearch.vocabulary import CLASSES, PSEUDO, SIMS, STAGES, lead_label, parse_leads

PRECISIONS = ("fp32", "bf16", "fp16")  # what a model may be evaluated in
TRAIN_PRECISIONS = ("fp32", "bf16")  # fp16 would need loss scaling (a GradScaler) to train
GRAPHS = ("auto", "on", "off")
# Width/depth defaults per architecture: the teacher is InceptionTime, the student a resnet1d.
ARCH_DEFAULTS = {"inception": {"width": 32, "depth": 6}, "resnet1d": {"width": 64, "depth": 4}}


@dataclass
class TrainConfig:
    """One stage's settings, as plain data (it is what Tune samples and what checkpoints record)."""

    stage: str = "teacher"  # teacher | student (pseudo = True) | baseline (pseudo = False)
    leads: str = "12"
    arch: str = ""  # default: inception for the teacher, resnet1d for student and baseline
    width: int = 0  # 0: the architecture's default (ARCH_DEFAULTS)
    depth: int = 0
    embedding_size: int = 128
    alpha: float = 1.0
    sim: str = "cosine"
    lr: float = 1e-3
    weight_decay: float = 1e-2
    epochs: int = 10
    batch_size: int = 64
    schedule: str = "onecycle"  # onecycle | cosine
    crop_seconds: float = 2.5  # 0: train on the whole 10 s
    eval_stride_seconds: float = 0.0  # 0: windows side by side (stride = crop)
    precision: str = "bf16"
    graphs: str = "auto"  # the step as one CUDA graph: auto (on for CUDA) | on | off
    teacher_cache: int = 0  # student: teacher embeddings precomputed at this many crop positions; 0: off
    device: str = "auto"
    threads: int = 0  # torch threads; 0: torch's default
    seed: int = 0
    n_boot: int = 1000
    extra: dict = field(default_factory=dict)  # free-form notes carried into metrics.json

    def resolved(self) -> TrainConfig:
        """Validate and fill the architecture defaults; raises UserError naming the bad value."""
        if self.stage not in STAGES:
            raise UserError(f"stage {self.stage!r}: expected one of {', '.join(STAGES)}")
        arch = self.arch or ("inception" if self.stage == "teacher" else "resnet1d")
        if arch not in ARCHS:
            raise UserError(f"architecture {arch!r}: expected one of {', '.join(ARCHS)}")
        if self.sim not in SIMS:
            raise UserError(f"similarity {self.sim!r}: expected one of {', '.join(SIMS)}")
        if self.precision not in PRECISIONS:
            raise UserError(f"precision {self.precision!r}: expected one of {', '.join(PRECISIONS)}")
        if self.graphs not in GRAPHS:
            raise UserError(f"graphs {self.graphs!r}: expected one of {', '.join(GRAPHS)}")
        if not isinstance(self.teacher_cache, int) or self.teacher_cache < 0:
            raise UserError(f"teacher_cache {self.teacher_cache!r}: expected a number of crop positions >= 0")
        if self.schedule not in ("onecycle", "cosine"):
            raise UserError(f"schedule {self.schedule!r}: expected onecycle or cosine")
        leads = parse_leads(self.leads)
        if self.stage == "teacher" and len(leads) != 12:
            raise UserError(f"leads {self.leads!r}: the teacher reads all 12 leads")
        for name in ("epochs", "batch_size", "embedding_size", "n_boot"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} {getattr(self, name)}: expected a positive integer")
        for name in ("width", "depth", "threads"):
            if getattr(self, name) < 0:
                raise UserError(f"{name} {getattr(self, name)}: expected an integer >= 0 (0: the default)")
        if not (self.lr > 0 and self.alpha >= 0 and self.weight_decay >= 0):
            raise UserError(
                f"lr {self.lr} / alpha {self.alpha} / weight_decay {self.weight_decay}: expected lr > 0, "
                f"alpha >= 0 and weight_decay >= 0"
            )
        if not 0 <= self.seed < 2**32:
            raise UserError(f"seed {self.seed}: expected 0 to 2^32 - 1")
        for name in ("crop_seconds", "eval_stride_seconds"):
            if not 0 <= getattr(self, name) <= RECORD_SECONDS:
                raise UserError(
                    f"{name} {getattr(self, name)}: expected 0 to {RECORD_SECONDS} seconds (PTB-XL's "
                    f"records are {RECORD_SECONDS} s; 0: the whole record)"
                )
        return replace(
            self,
            arch=arch,
            leads=lead_label(leads),
            width=self.width or ARCH_DEFAULTS[arch]["width"],
            depth=self.depth or ARCH_DEFAULTS[arch]["depth"],
        )

    @property
    def lead_indices(self) -> tuple[int, ...]:
        """The leads this stage reads, as indices in PTB-XL order (the label parsed once, here)."""
        return parse_leads(self.leads)

    def model_config(self) -> ModelConfig:
        return ModelConfig(
            arch=self.arch,
            n_leads=len(self.lead_indices),
            width=self.width,
            depth=self.depth,
            embedding_size=self.embedding_size,
        )


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {name!r}: CUDA is not available on this machine")
    return torch.device(name)


def _window_starts(total: int, length: int, stride: int) -> list[int]:
    """Sliding-window starts covering the whole record (the last window ends at its end)."""
    if length >= total:
        return [0]
    starts = list(range(0, total - length + 1, stride))
    return starts if starts[-1] == total - length else starts + [total - length]


def window_size(cfg: TrainConfig, sampling_rate: int) -> tuple[int, int]:
    """Evaluation window length and stride in samples; length 0: the whole record is one window."""
    length = int(cfg.crop_seconds * sampling_rate) if cfg.crop_seconds else 0
    return length, int((cfg.eval_stride_seconds or cfg.crop_seconds or 10) * sampling_rate)


def window_geometry(cfg: TrainConfig, sampling_rate: int, total: int) -> tuple[int, list[int]]:
    """Evaluation windows of a record of `total` samples: (window length, window starts)."""
    length, stride = window_size(cfg, sampling_rate)
    length = length or total
    return length, _window_starts(total, length, stride)


def teacher_source(cfg: TrainConfig) -> str:
    """How a student sees its teacher, in words (the search's opening lines, the report header)."""
    if cfg.teacher_cache:
        return f"its embeddings cached at {cfg.teacher_cache} crop positions (teacher_cache)"
    return "its forward on every crop (teacher_cache 0)"


def use_graphs(cfg: TrainConfig, device: torch.device) -> bool:
    """Whether the step runs as one CUDA graph: `graphs` auto means on CUDA devices."""
    if cfg.graphs == "on" and device.type != "cuda":
        raise UserError(f"graphs on: CUDA graphs need a CUDA device, this stage runs on {device}")
    return cfg.graphs != "off" and device.type == "cuda"


@torch.no_grad()
def window_probabilities(
    net: ContrastiveNet, x: torch.Tensor, meta: torch.Tensor, cfg: TrainConfig, length: int, starts: list[int]
) -> torch.Tensor:
    """Sigmoid scores (b, 5), on the device, of standardized records `x` (b, leads, T): the sigmoid
    outputs of their sliding windows averaged per record (the PTB-XL benchmark's recipe)."""
    net.eval()
    windows = torch.cat([x[:, :, a : a + length] for a in starts])  # (W*b, L, length)
    with autocast(cfg.precision, x.device):
        _, logits = net(windows, meta.repeat(len(starts), 1))
    return torch.sigmoid(logits.float()).reshape(len(starts), len(x), -1).mean(dim=0)


def window_scores(
    net: ContrastiveNet, x: torch.Tensor, meta: torch.Tensor, cfg: TrainConfig, length: int, starts: list[int]
) -> np.ndarray:
    """window_probabilities on the host, as numpy."""
    return window_probabilities(net, x, meta, cfg, length, starts).cpu().numpy()


def predict(
    net: ContrastiveNet,
    signals: Signals,
    rows: np.ndarray,
    cfg: TrainConfig,
    batch_records: int | None = None,
) -> np.ndarray:
    """Sigmoid scores (n, 5) of dataset rows: each record's sliding windows averaged.

    On a GPU, many records at a time (`batch_records` default 512: thousands of windows per
    forward) and the scores kept on the device until one copy at the end; on a CPU, 64 at a time."""
    data, device = signals.data, signals.device
    batch_records = batch_records or (512 if device.type == "cuda" else 64)
    leads = cfg.lead_indices
    length, starts = window_geometry(cfg, data.sampling_rate, data.signals.shape[2])
    out = []
    for s in range(0, len(rows), batch_records):
        r = rows[s : s + batch_records]
        meta = torch.from_numpy(data.meta[r]).to(device)
        out.append(window_probabilities(net, signals.batch(r, leads), meta, cfg, length, starts))
    if not out:
        return np.zeros((0, len(CLASSES)), dtype=np.float32)
    return torch.cat(out).cpu().numpy()


def evaluate(
    net: ContrastiveNet,
    signals: Signals,
    split: str,
    cfg: TrainConfig,
    with_ci: bool = False,
) -> dict:
    """Macro-AUC, per-class AUC (and the bootstrap CI) of `split`, plus the predictions."""
    data = signals.data
    rows = data.split(split)
    y_score = predict(net, signals, rows, cfg)
    y_true = data.labels[rows]
    result = {
        "macro_auc": macro_auc(y_true, y_score),
        "per_class_auc": dict(zip(CLASSES, per_class_auc(y_true, y_score).tolist(), strict=True)),
        "ecg_id": data.ecg_id[rows],
        "y_true": y_true,
        "y_score": y_score,
    }
    if with_ci:
        result["macro_auc_ci"] = list(bootstrap_ci(y_true, y_score, n_boot=cfg.n_boot, seed=cfg.seed))
    return result


@torch.no_grad()
def compute_teacher_cache(
    teacher: dict, data: PTBXL, cfg: TrainConfig, batch_records: int | None = None
) -> TeacherCache:
    """The teacher's embedding (eval mode, `cfg`'s precision) of every training record at
    `cfg.teacher_cache` crop starts spread over the record: what a student trial with that setting
    reads instead of running the teacher (same numbers as the teacher's forward on those crops)."""
    cfg = cfg.resolved()
    device = pick_device(cfg.device)
    net = import_net(teacher, "teacher").to(device).eval()
    signals = Signals(data, device)
    total, length = data.signals.shape[2], _crop_length(cfg, data)
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
    if device.type == "cuda":  # the training that follows in this process gets the memory back
        torch.cuda.empty_cache()
    if out.dtype == torch.bfloat16:
        return TeacherCache(grid, length, rows, out.view(torch.uint16).numpy(), "bfloat16")
    return TeacherCache(grid, length, rows, out.float().numpy(), "float32")


# -------------------------------------------------------------------------------- the stage


@dataclass
class StageResult:
    """What a finished (or stopped) stage leaves: the network and its per-epoch history."""

    cfg: TrainConfig
    net: ContrastiveNet
    history: list
    device: torch.device
    data: dict | None = None  # checkpoint.data_stats of the training data

    def export(self) -> dict:
        return {**export_net(self.net, self.cfg), "data": self.data}


EpochCallback = Callable[[dict, Callable[[], dict]], "bool | None"]


def _frozen(net: nn.Module) -> nn.Module:
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def train_stage(
    cfg: TrainConfig,
    data: PTBXL,
    teacher: dict | None = None,
    on_epoch: EpochCallback | None = None,
    resume: dict | None = None,
    progress: bool = False,
    cache: TeacherCache | None = None,
) -> StageResult:
    """Train one stage. `teacher` (export_net's dict) is required for the student stage; `cache`
    (`compute_teacher_cache(teacher, ...)`) replaces the teacher's forward when `cfg.teacher_cache`
    asks for it (computed here if not given).

    After every epoch `on_epoch(metrics, state)` is called; `state()` returns everything needed to
    resume (model, optimizer, scheduler, epoch, history) for a checkpoint, and a True return stops
    training. `resume` is such a state: training continues after its epoch, bit-for-bit on a CPU as
    if it had not stopped (the shuffle and crops of epoch e are seeded by (seed, e)).
    """
    t_setup = time.perf_counter()
    cfg = cfg.resolved()
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
    graphed = use_graphs(cfg, device)
    torch.manual_seed(cfg.seed)
    net = ContrastiveNet(cfg.model_config()).to(device)
    teacher_net = None
    if cfg.stage == "student":
        if teacher is None:
            raise UserError("the student stage needs a teacher checkpoint (--teacher), or use --baseline")
        check_teacher(teacher, "teacher", cfg.embedding_size)
        teacher_net = _frozen(import_net(teacher, "teacher").to(device).eval())
        net.classifier.load_state_dict(teacher_net.classifier.state_dict())
        _frozen(net.classifier)  # the pseudo-classifier stays the teacher's
        if cfg.teacher_cache and cache is None:
            if progress:
                print(
                    f"computing the teacher's embeddings at {cfg.teacher_cache} crops per record",
                    file=sys.stderr,
                )
            cache = compute_teacher_cache(teacher, data, cfg)
        if cfg.teacher_cache:
            _check_cache(cache, cfg, data)
    cache = cache if cfg.stage == "student" and cfg.teacher_cache else None
    total = data.signals.shape[2]
    length = _crop_length(cfg, data)
    train_rows = data.split("train")
    steps_per_epoch = max(1, math.ceil(len(train_rows) / cfg.batch_size))

    step = _train_step(cfg, data, device, net, teacher_net, cache, graphed)
    net, optimizer = step.net, step.optimizer
    for group in optimizer.param_groups:  # as a fresh optimizer: float lr and betas, no earlier schedule
        group["lr"], group["betas"] = cfg.lr, BETAS
        group.pop("initial_lr", None)
    if cfg.schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch
        )
    else:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs * steps_per_epoch)
    history: list[dict] = []
    start_epoch = 0
    load_optimizer_state(optimizer, None)  # a reused step's moments start from zero
    if resume is not None:
        net.load_state_dict(resume["model"])
        load_optimizer_state(optimizer, resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        history = list(resume["history"])
        start_epoch = int(resume["epoch"]) + 1
    capturable = isinstance(optimizer, CapturableAdamW)
    if capturable:
        optimizer.keep_tensor_hyperparameters()
    signals = step.signals
    grid = None if cache is None else cache.grid

    def state(epoch: int) -> dict:
        return {
            "model": {k: v.clone() for k, v in net.state_dict().items()},
            "optimizer": portable_optimizer_state(optimizer),
            "scheduler": scheduler.state_dict(),
            "epoch": epoch,
            "history": history,
            "config": asdict(cfg),
            "model_config": net.cfg.to_dict(),
            "data": data_stats(data),
        }

    setup_seconds = None
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        rng = np.random.default_rng([cfg.seed, epoch])
        torch.manual_seed(cfg.seed * 1000 + epoch)
        # padded where batches are cut on the device (a GPU), eager or graphed alike (a graph's
        # shapes are fixed; eager does the same sums, so `graphs` changes the speed only); a CPU's
        # plan is what it always was
        pad = signals.resident
        plan = epoch_plan(train_rows, rng, cfg.batch_size, total, length, grid=grid, pad=pad)
        net.train()
        if cfg.stage == "student":
            net.classifier.eval()  # frozen: no dropout either, it is the teacher's function
        step.start_epoch(plan)
        batches = plan.batches()
        if progress:
            from tqdm import tqdm

            batches = tqdm(
                batches,
                desc=f"{cfg.stage} epoch {epoch + 1}/{cfg.epochs}",
                unit="batch",
                leave=False,
                file=sys.stderr,
            )
        for first, last in batches:
            step(first, last)
            if setup_seconds is None:  # until the first step is done: model, data upload, capture
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                setup_seconds = time.perf_counter() - t_setup
            scheduler.step()
            if capturable:
                optimizer.keep_tensor_hyperparameters()
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
            "lr": float(optimizer.param_groups[0]["lr"]),
            "train_seconds": train_seconds,
            "epoch_seconds": time.perf_counter() - t0,
            "samples_per_s": plan.records / train_seconds,
            "setup_seconds": setup_seconds,
            "graphs": step.graphed,  # False after a capture that failed under graphs auto
        }
        if device.type == "cuda":  # what --gpus-per-trial must leave room for (plus the CUDA context)
            metrics["gpu_max_allocated_MiB"] = torch.cuda.max_memory_allocated(device) / 2**20
        history.append(metrics)
        if progress:
            print(
                f"{cfg.stage} epoch {epoch + 1}/{cfg.epochs}: loss {metrics['train_loss']:.4f} "
                f"val macro-AUC {metrics['val_macro_auc']:.4f} ({metrics['epoch_seconds']:.0f} s, "
                f"{metrics['samples_per_s']:.0f} samples/s)",
                file=sys.stderr,
            )
        if on_epoch is not None and on_epoch(metrics, lambda e=epoch: state(e)):
            break
    # a kept step trains the next trial of this process: the caller gets a copy of its network
    return StageResult(cfg, copy.deepcopy(net) if step.replay else net, history, device, data_stats(data))


def _check_cache(cache: TeacherCache, cfg: TrainConfig, data: PTBXL) -> None:
    """A given teacher cache must hold the crops this student trains on."""
    length = _crop_length(cfg, data)
    if cache.length != length or not np.array_equal(
        cache.grid, crop_grid(data.signals.shape[2], length, cfg.teacher_cache)
    ):
        raise UserError(
            f"teacher cache of {len(cache.grid)} crops of {cache.length} samples: this student "
            f"asks for {cfg.teacher_cache} crops of {length}"
        )


def _crop_length(cfg: TrainConfig, data: PTBXL) -> int:
    """Training crop length in samples: the evaluation window, or the whole record."""
    return window_size(cfg, data.sampling_rate)[0] or data.signals.shape[2]


def _train_step(
    cfg: TrainConfig,
    data: PTBXL,
    device: torch.device,
    net: ContrastiveNet,
    teacher_net: ContrastiveNet | None,
    cache: TeacherCache | None,
    graphed: bool,
) -> TrainStep:
    """The stage's TrainStep. Graphed, the process's last captured step is reused when everything
    its graph bakes in matches (shapes, settings the kernels take as constants, the networks'
    architectures): this trial's fresh weights, teacher, cached embeddings, data and alpha are
    copied into the tensors the graph reads, so it is not captured again (Ray Tune's reused actors
    run trial after trial)."""
    teacher_net = None if cache is not None else teacher_net  # the cache replaces its forward
    length = _crop_length(cfg, data)
    key = None
    if graphed:
        key = (str(device), cfg.stage, cfg.leads, cfg.batch_size, length, cfg.precision, cfg.sim)
        key += (cfg.weight_decay, repr(net.cfg), None if teacher_net is None else repr(teacher_net.cfg))
        key += (data.signals.shape, data.meta.shape)
        if cache is not None:
            key += (cache.embeddings.shape, cache.dtype, int(cache.rows.max()) + 1)
    step = reusable(key) if graphed else None
    if step is not None:
        with torch.no_grad():
            step.net.load_state_dict(net.state_dict())
            if step.teacher is not None:
                step.teacher.load_state_dict(teacher_net.state_dict())
            if step.cache is not None:
                step.cache.load(cache)
            step.signals.load(data)
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


def final_metrics(result: StageResult, data: PTBXL, with_ci: bool = True) -> tuple[dict, dict]:
    """Validation and test figures of a finished stage; the only place the test fold is read.

    Callers that choose configurations (the search, the report) hand their trials a copy of the
    data with the test fold sealed (`PTBXL.test_sealed`) and call this only for frozen choices.
    """
    cfg = result.cfg
    signals = Signals(data, result.device)
    val = evaluate(result.net, signals, "val", cfg, with_ci=with_ci)
    test = evaluate(result.net, signals, "test", cfg, with_ci=with_ci)
    metrics = {
        "stage": cfg.stage,
        "pseudo": PSEUDO[cfg.stage],
        "leads": cfg.leads,
        "classes": list(CLASSES),
        "val_macro_auc": val["macro_auc"],
        "val_macro_auc_ci": val.get("macro_auc_ci"),
        "val_per_class_auc": val["per_class_auc"],
        "test_macro_auc": test["macro_auc"],
        "test_macro_auc_ci": test.get("macro_auc_ci"),
        "per_class_auc": test["per_class_auc"],
        "epochs_run": len(result.history),
        "history": result.history,
        "config": asdict(cfg),
    }
    return metrics, {"val": val, "test": test}


def evaluate_frozen(
    blob: dict, data: PTBXL, out_dir: str | os.PathLike, device: str, with_ci: bool = True
) -> dict:
    """Evaluate a chosen (frozen) network, export_net's dict, on validation and test on `device`;
    write it and its predictions to `out_dir` (write_run's layout); return its metrics."""
    cfg = replace(TrainConfig(**blob["config"]).resolved(), device=device)
    dev = pick_device(device)
    net = import_net(blob, str(out_dir)).to(dev)
    stage = StageResult(cfg, net, blob.get("history", []), dev, data_stats(data))
    metrics, predictions = final_metrics(stage, data, with_ci=with_ci)
    write_run(out_dir, stage, metrics, predictions)
    return metrics


def write_run(run_dir: str | os.PathLike, result: StageResult, metrics: dict, predictions: dict) -> None:
    """RUN_DIR: model.pt + config.json, metrics.json, predictions_{val,test}.npz."""
    run_dir = Path(run_dir)
    save_checkpoint(run_dir, result.export())
    for split, p in predictions.items():
        arrays = {k: p[k] for k in ("ecg_id", "y_true", "y_score")}
        write_with(run_dir / f"predictions_{split}.npz", lambda tmp, a=arrays: _savez(tmp, a))
    write_text(run_dir / "metrics.json", json.dumps(metrics, indent=1))  # last: it marks a finished run


def _savez(path: Path, arrays: dict) -> None:
    with open(path, "wb") as fh:  # a file object: np.savez would add .npz to a temporary name
        np.savez(fh, **arrays)


# ------------------------------------------------------------------------- one stage, one run


@dataclass
class TrainOptions(DataOptions):
    """`python -m raysearch train`: one stage into its own RUN_DIR, without Ray.

    The stage follows from the options: a `teacher` checkpoint trains a student (pseudo = True),
    `baseline` the same network without teacher (pseudo = False), neither the 12-lead teacher.
    `config` holds the other TrainConfig fields (leads, lr, epochs, ...).
    """

    out: str = ""
    teacher: str | None = None
    baseline: bool = False
    embedding_size: int | None = None  # None: the teacher's, else TrainConfig's default
    config: dict = field(default_factory=dict)


def train_one(options: TrainOptions, progress: bool = True) -> dict:
    """Train, evaluate on validation and test, write RUN_DIR; returns its metrics.json."""
    if options.teacher and options.baseline:
        raise UserError("--teacher and --baseline exclude each other (the baseline has no teacher)")
    teacher = load_teacher(options.teacher) if options.teacher else None
    stage = "student" if teacher is not None else ("baseline" if options.baseline else "teacher")
    embedding = options.embedding_size or (
        teacher["model_config"]["embedding_size"] if teacher else TrainConfig.embedding_size
    )
    cfg = TrainConfig(**{**options.config, "stage": stage, "embedding_size": embedding})
    if stage == "teacher" and len(cfg.lead_indices) != 12:
        raise UserError(
            f"--leads {cfg.leads}: without --teacher or --baseline this trains the 12-lead teacher"
        )
    cfg = cfg.resolved()
    if teacher is not None:
        check_teacher(teacher, str(options.teacher), cfg.embedding_size)
    out = Path(options.out)
    if (out / "metrics.json").exists():
        raise UserError(f"{out}: already holds a finished run (metrics.json); choose another --out")
    data = open_dataset(options, progress=progress)
    require_answerable(data)
    print(
        f"training {stage} on leads {cfg.leads} ({cfg.arch}, width {cfg.width}, depth {cfg.depth}, "
        f"embedding {cfg.embedding_size}) on {'synthetic data ' if data.synthetic else ''}{data.source} "
        f"-> {out}",
        file=sys.stderr,
    )
    t0 = time.perf_counter()
    result = train_stage(cfg, data, teacher=teacher, progress=progress)
    metrics, predictions = final_metrics(result, data)
    metrics["wall_seconds"] = time.perf_counter() - t0
    metrics["data"] = data.source
    metrics["synthetic"] = data.synthetic
    write_run(out, result, metrics, predictions)
    return metrics
