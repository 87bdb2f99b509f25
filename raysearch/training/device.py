"""The device a stage trains on, and what follows from it: mixed precision, CUDA graphs."""

from __future__ import annotations

import torch

from raysearch.errors import UserError
from raysearch.training.config import TrainConfig


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {name!r}: CUDA is not available on this machine")
    return torch.device(name)


def use_graphs(cfg: TrainConfig, device: torch.device) -> bool:
    """Whether the step runs as one CUDA graph: `graphs` auto means on CUDA devices."""
    if cfg.graphs == "on" and device.type != "cuda":
        raise UserError(f"graphs on: CUDA graphs need a CUDA device, this stage runs on {device}")
    return cfg.graphs != "off" and device.type == "cuda"


def autocast(precision: str, device: torch.device, cache: bool = True):
    """Mixed precision per the config (fp16 needs CUDA); `cache=False` inside CUDA-graph capture."""
    if precision == "fp32":
        return torch.autocast(device.type, enabled=False)
    if precision == "fp16" and device.type != "cuda":
        raise UserError("precision fp16 needs a CUDA device; use bf16 or fp32 on a CPU")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype, cache_enabled=cache)
