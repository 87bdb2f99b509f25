"""What a report is asked: the command line's options, `raysearch.report`'s keyword arguments."""

from __future__ import annotations

from dataclasses import dataclass

from raysearch.data.dataset import DataOptions
from raysearch.searching.options import ClusterOptions


@dataclass
class ReportOptions(DataOptions, ClusterOptions):
    """What `raysearch report` is asked (the CLI's options; `raysearch.report`'s arguments)."""

    run_dir: str = ""  # the RUN_DIR of a finished search: a path or the URI it stored to
    seeds: int | None = None  # retrain each chosen configuration with K new seeds; None: single-seed
    n_boot: int = 1000
    threshold_rule: str = "f1"  # f1 | youden | sensitivity:X: each class's threshold, fitted on validation
    data: str | None = None  # type: ignore[assignment]  # None: the search's own --data
    # which configuration of each arm to report: "finalists" (the best seed mean, the search's
    # choice when it ran finalists) or "first-run" (the best single run, what a search without
    # finalists chooses); None: the search's own choice
    chosen_by: str | None = None


CHOSEN_BY = ("finalists", "first-run")
