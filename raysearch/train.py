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

from raysearch.checkpoint import (
    check_teacher,
    data_stats,
    export_net,
    import_net,
    load_checkpoint,
    save_checkpoint,
)
from raysearch.data import PTBXL
from raysearch.errors import UserError
from raysearch.metrics import bootstrap_ci, macro_auc, per_class_auc
from raysearch.models import ARCHS, ContrastiveNet, ModelConfig
from raysearch.sources import DataOptions, open_dataset
from raysearch.vocabulary import CLASSES, PSEUDO, SIMS, STAGES, lead_label, parse_leads

PRECISIONS = ("fp32", "bf16", "fp16")
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
        if self.schedule not in ("onecycle", "cosine"):
            raise UserError(f"schedule {self.schedule!r}: expected onecycle or cosine")
        leads = parse_leads(self.leads)
        if self.stage == "teacher" and len(leads) != 12:
            raise UserError(f"leads {self.leads!r}: the teacher reads all 12 leads")
        for name in ("epochs", "batch_size", "embedding_size"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} {getattr(self, name)}: expected a positive integer")
        if not (self.lr > 0 and self.alpha >= 0):
            raise UserError(f"lr {self.lr} / alpha {self.alpha}: expected lr > 0 and alpha >= 0")
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


def similarity(kind: str, v12: torch.Tensor, vx: torch.Tensor) -> torch.Tensor:
    """The similarity loss between teacher and student embeddings: 0 when they are identical."""
    if kind == "l1":
        return (v12 - vx).abs().mean()
    if kind == "l2":
        return ((v12 - vx) ** 2).mean()
    if kind == "cosine":
        return (1.0 - nn.functional.cosine_similarity(v12, vx, dim=1)).mean()
    raise ValueError(f"unknown similarity {kind!r}")


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {name!r}: CUDA is not available on this machine")
    return torch.device(name)


def _autocast(cfg: TrainConfig, device: torch.device):
    if cfg.precision == "fp32":
        return torch.autocast(device.type, enabled=False)
    if cfg.precision == "fp16" and device.type != "cuda":
        raise UserError("precision fp16 needs a CUDA device; use bf16 or fp32 on a CPU")
    return torch.autocast(device.type, dtype=torch.bfloat16 if cfg.precision == "bf16" else torch.float16)


# ------------------------------------------------------------------------------- batches


class Signals:
    """Standardized batches of PTB-XL signals, made on the training device.

    On a GPU (`resident`) the raw int16 samples (about 0.5 GB for PTB-XL at 100 Hz) are copied to
    the device once and each batch is indexed, cropped and standardized there, so the host only
    draws random numbers and the trials packed on a GPU do not compete for CPU cores to copy and
    convert samples (BENCHMARKS.md, "GPU", has what was and was not measured). On a CPU the batch
    is cut from the (memory-mapped) array, cropped before it is converted so only the kept samples
    are standardized. Both give the same numbers as `PTBXL.standardized` (same float32 operations,
    same order).
    """

    def __init__(self, data: PTBXL, device: torch.device, resident: bool | None = None):
        self.data, self.device = data, device
        self.resident = device.type == "cuda" if resident is None else resident
        self.mean, self.std = torch.from_numpy(data.mean).to(device), torch.from_numpy(data.std).to(device)
        if self.resident:  # np.array: a writable copy of what may be a read-only memmap / Ray buffer
            self.signals = torch.from_numpy(np.array(data.signals)).to(device)
            self.baseline = torch.from_numpy(np.array(data.baseline)).to(device)
            self.gain = torch.from_numpy(np.array(data.gain)).to(device)

    def batch(
        self, rows: np.ndarray, leads: tuple[int, ...], starts: np.ndarray | None = None, length: int = 0
    ) -> torch.Tensor:
        """(len(rows), len(leads), length) float32 on the device; `starts`: each record's window
        start (None: the whole record)."""
        leads = list(leads)
        if self.resident:
            r = torch.from_numpy(np.asarray(rows)).to(self.device)
            x = self.signals[r][:, leads].float()
            if starts is not None:
                idx = torch.from_numpy(starts).to(self.device)[:, None]
                idx = idx + torch.arange(length, device=self.device)
                x = torch.gather(x, 2, idx[:, None, :].expand(-1, len(leads), -1))
            base, gain = self.baseline[r][:, leads, None], self.gain[r][:, leads, None]
        else:
            x = self.data.signals[rows][:, leads]
            if starts is not None:
                idx = starts[:, None] + np.arange(length)[None, :]
                x = np.take_along_axis(x, idx[:, None, :], axis=2)
            x = torch.from_numpy(x.astype(np.float32)).to(self.device)
            base = torch.from_numpy(self.data.baseline[rows][:, leads, None]).to(self.device)
            gain = torch.from_numpy(self.data.gain[rows][:, leads, None]).to(self.device)
        x = (x - base) / gain
        return (x - self.mean[leads][None, :, None]) / self.std[leads][None, :, None]


def _crop_starts(n: int, total: int, length: int, rng: np.random.Generator) -> np.ndarray | None:
    """One random window start per record (None: the crop is the whole record)."""
    return None if length >= total else rng.integers(0, total - length + 1, size=n)


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


@torch.no_grad()
def window_scores(
    net: ContrastiveNet, x: torch.Tensor, meta: torch.Tensor, cfg: TrainConfig, length: int, starts: list[int]
) -> np.ndarray:
    """Sigmoid scores (b, 5) of standardized records `x` (b, leads, T): the sigmoid outputs of
    their sliding windows averaged per record (the PTB-XL benchmark's recipe)."""
    net.eval()
    windows = torch.cat([x[:, :, a : a + length] for a in starts])  # (W*b, L, length)
    with _autocast(cfg, x.device):
        _, logits = net(windows, meta.repeat(len(starts), 1))
    return torch.sigmoid(logits.float()).cpu().numpy().reshape(len(starts), len(x), -1).mean(axis=0)


def predict(
    net: ContrastiveNet,
    signals: Signals,
    rows: np.ndarray,
    cfg: TrainConfig,
    batch_records: int = 64,
) -> np.ndarray:
    """Sigmoid scores (n, 5) of dataset rows: each record's sliding windows averaged."""
    data, device = signals.data, signals.device
    leads = cfg.lead_indices
    length, starts = window_geometry(cfg, data.sampling_rate, data.signals.shape[2])
    out = np.zeros((len(rows), len(CLASSES)), dtype=np.float32)
    for s in range(0, len(rows), batch_records):
        r = rows[s : s + batch_records]
        meta = torch.from_numpy(data.meta[r]).to(device)
        out[s : s + len(r)] = window_scores(net, signals.batch(r, leads), meta, cfg, length, starts)
    return out


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


def train_stage(
    cfg: TrainConfig,
    data: PTBXL,
    teacher: dict | None = None,
    on_epoch: EpochCallback | None = None,
    resume: dict | None = None,
    progress: bool = False,
) -> StageResult:
    """Train one stage. `teacher` (export_net's dict) is required for the student stage.

    After every epoch `on_epoch(metrics, state)` is called; `state()` returns everything needed to
    resume (model, optimizer, scheduler, epoch, history) for a checkpoint, and a True return stops
    training. `resume` is such a state: training continues after its epoch, bit-for-bit as if it
    had not stopped (the shuffle and crops of epoch e are seeded by (seed, e)).
    """
    cfg = cfg.resolved()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    net = ContrastiveNet(cfg.model_config()).to(device)
    leads = cfg.lead_indices
    teacher_net = None
    if cfg.stage == "student":
        if teacher is None:
            raise UserError("the student stage needs a teacher checkpoint (--teacher), or use --baseline")
        check_teacher(teacher, "teacher", cfg.embedding_size)
        teacher_net = import_net(teacher, "teacher").to(device).eval()
        for p in teacher_net.parameters():
            p.requires_grad_(False)
        net.classifier.load_state_dict(teacher_net.classifier.state_dict())
        for p in net.classifier.parameters():  # the pseudo-classifier stays the teacher's
            p.requires_grad_(False)
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    train_rows = data.split("train")
    steps_per_epoch = max(1, math.ceil(len(train_rows) / cfg.batch_size))
    if cfg.schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch
        )
    else:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs * steps_per_epoch)
    history: list[dict] = []
    start_epoch = 0
    if resume is not None:
        net.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        history = list(resume["history"])
        start_epoch = int(resume["epoch"]) + 1
    total = data.signals.shape[2]
    length = int(cfg.crop_seconds * data.sampling_rate) if cfg.crop_seconds else total
    signals = Signals(data, device)
    bce = nn.BCEWithLogitsLoss()
    all_leads = tuple(range(12))

    def state(epoch: int) -> dict:
        return {
            "model": net.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": epoch,
            "history": history,
            "config": asdict(cfg),
            "model_config": net.cfg.to_dict(),
            "data": data_stats(data),
        }

    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        rng = np.random.default_rng([cfg.seed, epoch])
        torch.manual_seed(cfg.seed * 1000 + epoch)
        order = rng.permutation(train_rows)
        net.train()
        if teacher_net is not None:
            net.classifier.eval()  # frozen: no dropout either, it is the teacher's function
        # loss, bce, sim summed on the device, read once per epoch: no host sync inside the epoch
        sums = torch.zeros(3, dtype=torch.float64, device=device)
        batches = range(0, len(order), cfg.batch_size)
        if progress:
            from tqdm import tqdm

            batches = tqdm(
                batches,
                desc=f"{cfg.stage} epoch {epoch + 1}/{cfg.epochs}",
                unit="batch",
                leave=False,
                file=sys.stderr,
            )
        for s in batches:
            rows = np.sort(order[s : s + cfg.batch_size])  # sorted: faster reads from the memmap
            starts = _crop_starts(len(rows), total, length, rng)
            # the student's teacher reads all 12 leads of the same crop
            x_all = signals.batch(rows, all_leads if teacher_net is not None else leads, starts, length)
            x = x_all[:, list(leads)] if teacher_net is not None else x_all
            meta = torch.from_numpy(data.meta[rows]).to(device)
            y = torch.from_numpy(data.labels[rows]).to(device)
            with _autocast(cfg, device):
                vx, logits = net(x, meta)
                loss_bce = bce(logits.float(), y)
                if teacher_net is not None:
                    with torch.no_grad():
                        v12 = teacher_net.embed(x_all, meta)
                    loss_sim = similarity(cfg.sim, v12.float(), vx.float())
                else:
                    loss_sim = torch.zeros((), device=device)
                loss = loss_bce + cfg.alpha * loss_sim
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            sums += torch.stack([loss, loss_bce, loss_sim]).detach().double() * len(rows)
        train_loss, bce_loss, sim_loss = (sums / len(order)).tolist()
        train_seconds = time.perf_counter() - t0
        val = evaluate(net, signals, "val", cfg)
        metrics = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "bce_loss": bce_loss,
            "sim_loss": sim_loss,
            "val_macro_auc": val["macro_auc"],
            **{f"val_auc_{c}": a for c, a in val["per_class_auc"].items()},
            "lr": optimizer.param_groups[0]["lr"],
            "train_seconds": train_seconds,
            "epoch_seconds": time.perf_counter() - t0,
            "samples_per_s": len(order) / train_seconds,
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
    return StageResult(cfg, net, history, device, data_stats(data))


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
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
    for split, p in predictions.items():
        np.savez(
            run_dir / f"predictions_{split}.npz", ecg_id=p["ecg_id"], y_true=p["y_true"], y_score=p["y_score"]
        )


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
    teacher = load_checkpoint(options.teacher) if options.teacher else None
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
