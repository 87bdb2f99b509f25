"""`python -m raysearch train`: one stage into its own RUN_DIR, without Ray."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from raysearch.data.dataset import open_dataset
from raysearch.data.ptbxl import require_answerable
from raysearch.errors import UserError
from raysearch.training.checkpoint import (
    check_teacher,
    load_teacher,
)
from raysearch.training.config import TrainConfig, TrainOptions
from raysearch.training.evaluation import final_metrics, write_run
from raysearch.training.operating import check_rule
from raysearch.training.stage import train_stage


def train_one(options: TrainOptions, progress: bool = True) -> dict:
    """Train, evaluate on validation and test, write RUN_DIR; returns its metrics.json."""
    check_rule(options.threshold_rule)
    if options.teacher and options.baseline:
        raise UserError("--teacher and --baseline exclude each other (the baseline has no teacher)")
    teacher = load_teacher(options.teacher) if options.teacher else None
    stage = "student" if teacher is not None else ("baseline" if options.baseline else "teacher")
    embedding = options.embedding_size or (teacher.embedding_size if teacher else TrainConfig.embedding_size)
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
    metrics, predictions = final_metrics(result, data, rule=options.threshold_rule)
    metrics["wall_seconds"] = time.perf_counter() - t0
    metrics["data"] = data.source
    metrics["synthetic"] = data.synthetic
    write_run(out, result, metrics, predictions)
    return metrics
