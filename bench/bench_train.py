"""Benchmark one training stage on real data, next to the machine's measured matmul peak.

    python bench/bench_train.py --data /path/to/ptb-xl --out runs/bench-teacher --epochs 16

Measures in the same run: the matrix-multiply peak (GFLOP/s, fp32 and bf16, 2048^2 matmuls), the
model's FLOPs per training sample (torch's FlopCounterMode over one forward + backward), then trains
the stage (`python -m raysearch train` options pass through) and writes RUN_DIR as `train` does,
plus bench.json with wall time, samples/s and the achieved/peak ratio.
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from raysearch.data.dataset import DataOptions, open_dataset
from raysearch.training.checkpoint import load_checkpoint
from raysearch.training.config import TrainConfig
from raysearch.training.evaluation import final_metrics, write_run
from raysearch.training.models import ContrastiveNet
from raysearch.training.stage import train_stage


def matmul_gflops(dtype: torch.dtype, n: int = 2048, seconds: float = 3.0) -> float:
    """Median GFLOP/s of n x n matmuls over ~`seconds`."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    rates, t_end = [], time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        a @ b
        rates.append(2 * n**3 / (time.perf_counter() - t0) / 1e9)
    return float(np.median(rates))


def flops_per_sample(cfg: TrainConfig, length: int) -> float:
    """Forward + backward FLOPs of one training sample of the trained network (a student's frozen
    teacher forward pass is not counted)."""
    net = ContrastiveNet(cfg.model_config())
    x = torch.randn(8, len(cfg.lead_indices), length)
    meta = torch.randn(8, net.cfg.meta_dim)
    with FlopCounterMode(display=False) as counter:
        _, logits = net(x, meta)
        logits.sum().backward()
    return counter.get_total_flops() / 8


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--stage", default="teacher", choices=("teacher", "student", "baseline"))
    p.add_argument("--teacher")
    p.add_argument("--leads", default="12")
    p.add_argument("--epochs", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--sim", default="cosine")
    p.add_argument("--width", type=int, default=0)
    p.add_argument("--depth", type=int, default=0)
    p.add_argument("--embedding-size", type=int, default=128)
    p.add_argument("--precision", default="bf16")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()

    peak = {"fp32": matmul_gflops(torch.float32), "bf16": matmul_gflops(torch.bfloat16)}
    print(f"matmul peak: fp32 {peak['fp32']:.1f} GFLOP/s, bf16 {peak['bf16']:.1f} GFLOP/s", file=sys.stderr)
    data = open_dataset(DataOptions(a.data))
    cfg = TrainConfig(
        stage=a.stage,
        leads=a.leads,
        epochs=a.epochs,
        lr=a.lr,
        alpha=a.alpha,
        sim=a.sim,
        width=a.width,
        depth=a.depth,
        embedding_size=a.embedding_size,
        precision=a.precision,
        seed=a.seed,
    ).resolved()
    flops = flops_per_sample(cfg, int(cfg.crop_seconds * data.sampling_rate))
    teacher = load_checkpoint(a.teacher) if a.teacher else None
    t0 = time.perf_counter()
    result = train_stage(cfg, data, teacher=teacher, progress=True)
    train_wall = time.perf_counter() - t0
    metrics, predictions = final_metrics(result, data)
    metrics["wall_seconds"] = time.perf_counter() - t0
    write_run(a.out, result, metrics, predictions)
    sps = float(np.median([h["samples_per_s"] for h in result.history]))
    achieved = sps * flops / 1e9
    bench = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads",
        "date": time.strftime("%Y-%m-%d"),
        "command": " ".join(sys.argv),
        "config": metrics["config"],
        "records_train": int(len(data.split("train"))),
        "epochs": len(result.history),
        "train_wall_seconds": train_wall,
        "wall_seconds": metrics["wall_seconds"],
        "median_train_samples_per_s": sps,
        "gflop_per_sample_fwd_bwd": flops / 1e9,
        "achieved_gflops": achieved,
        "matmul_peak_gflops": peak,
        "ratio_to_peak": achieved / peak["bf16" if a.precision == "bf16" else "fp32"],
        "val_macro_auc": metrics["val_macro_auc"],
        "test_macro_auc": metrics["test_macro_auc"],
        "test_macro_auc_ci": metrics["test_macro_auc_ci"],
        "per_class_auc": metrics["per_class_auc"],
    }
    Path(a.out, "bench.json").write_text(json.dumps(bench, indent=1))
    print(json.dumps(bench, indent=1))


if __name__ == "__main__":
    main()
