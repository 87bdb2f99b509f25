"""Evaluation: a network's scores of dataset records (sliding windows whose sigmoid outputs are
averaged per record, the PTB-XL benchmark's recipe), macro-AUC on validation every epoch, and the
final figures of a chosen network, the only reader of the test fold.

    scores = score_records(net, signals, rows, cfg)       # (n, 5)
    metrics, predictions = final_metrics(result, data)    # validation and test, with bootstrap CIs
    write_run(out_dir, result, metrics, predictions)      # model.pt, metrics.json, predictions_*.npz
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch

from raysearch.data.ptbxl import PTBXL
from raysearch.data.schema import CLASSES
from raysearch.files import write_text, write_with
from raysearch.training.batches import Signals
from raysearch.training.checkpoint import (
    SavedNetwork,
    StageResult,
    data_stats,
    import_net,
    save_checkpoint,
)
from raysearch.training.config import PSEUDO, TrainConfig, window_geometry
from raysearch.training.device import autocast, pick_device
from raysearch.training.metrics import bootstrap_ci, macro_auc, per_class_auc
from raysearch.training.models import ContrastiveNet
from raysearch.training.operating import fit_operating_point


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


def score_records(
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
    y_score = score_records(net, signals, rows, cfg)
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


def final_metrics(
    result: StageResult, data: PTBXL, with_ci: bool = True, rule: str = "f1"
) -> tuple[dict, dict]:
    """Validation and test figures of a finished stage; the only place the test fold is read.
    The model's operating point (calibration and thresholds, training/operating.py, by `rule`) is
    fitted from the validation predictions before the test fold is read.

    Callers that choose configurations (the search, the report) hand their trials a copy of the
    data with the test fold sealed (`PTBXL.test_sealed`) and call this only for frozen choices.
    """
    cfg = result.cfg
    signals = Signals(data, result.device)
    val = evaluate(result.net, signals, "val", cfg, with_ci=with_ci)
    point = fit_operating_point(val["y_true"], val["y_score"], rule, list(CLASSES))
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
        "operating_point": point.to_dict(),  # what predict calibrates and labels by
    }
    return metrics, {"val": val, "test": test}


def evaluate_frozen(
    saved: SavedNetwork,
    data: PTBXL,
    out_dir: str | os.PathLike,
    device: str,
    with_ci: bool = True,
    rule: str = "f1",
) -> dict:
    """Evaluate a chosen (frozen) network, export_net's dict, on validation and test on `device`;
    write it and its predictions to `out_dir` (write_run's layout); return its metrics."""
    cfg = replace(TrainConfig(**saved.config).resolved(), device=device)
    dev = pick_device(device)
    net = import_net(saved, str(out_dir)).to(dev)
    stage = StageResult(cfg, net, saved.history, dev, data_stats(data))
    metrics, predictions = final_metrics(stage, data, with_ci=with_ci, rule=rule)
    write_run(out_dir, stage, metrics, predictions)
    return metrics


def write_run(run_dir: str | os.PathLike, result: StageResult, metrics: dict, predictions: dict) -> None:
    """RUN_DIR: model.pt + config.json, metrics.json, predictions_{val,test}.npz."""
    run_dir = Path(run_dir)
    save_checkpoint(run_dir, result.export())
    for split, p in predictions.items():
        arrays = {k: p[k] for k in ("ecg_id", "y_true", "y_score")}
        write_with(run_dir / f"predictions_{split}.npz", partial(_savez, arrays=arrays))
    write_text(run_dir / "metrics.json", json.dumps(metrics, indent=1))  # last: it marks a finished run


def _savez(path: Path, arrays: dict) -> None:
    with open(path, "wb") as fh:  # a file object: np.savez would add .npz to a temporary name
        np.savez(fh, **arrays)
