"""What a search is asked: the command line's options, `raysearch.search`'s keyword arguments."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from raysearch.data.dataset import DataOptions
from raysearch.searching.cluster import ClusterOptions


@dataclass
class SearchOptions(DataOptions, ClusterOptions):
    """Everything a search is asked to do (the CLI's options; `raysearch.search`'s arguments)."""

    leads: str = "4"  # 2, 3, 4, 6, comma-separated, or 'all'
    trials: int = 16  # per arm (student and baseline) per lead subset
    space: str | None = None  # None: the paper's space when trials get GPUs, else the CPU space
    storage: str = field(default_factory=lambda: os.environ.get("RAYSEARCH_STORAGE", "runs"))
    name: str | None = None  # default: search-<leads>-<time>
    seed: int = 0
    teacher: str | None = None  # a teacher checkpoint: no teacher search
    teacher_trials: int = 2  # per embedding size
    no_baseline: bool = False
    mlflow: str | None = None  # an MLflow tracking URI: every trial logged there too
    resume: bool = False
