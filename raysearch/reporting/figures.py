"""The report as typed records: what table.py computes and report.json holds, and what the
markdown, csv, figures and reading read. Plain dicts at run time (JSON as written), typed here."""

from __future__ import annotations

from typing import TypedDict


class SplitFigures(TypedDict, total=False):
    """One arm's figures on one split (validation or test)."""

    per_seed: list[float]  # each seed's macro-AUC
    mean: float
    std: float | None  # None with one seed
    ensemble: float  # macro-AUC of the seeds' averaged predictions
    ensemble_per_class: dict[str, float]
    ensemble_ci: list[float]  # test only: bootstrap 95% CI over test records


class ArmFigures(TypedDict, total=False):
    """One arm of one lead subset (or the teacher): its runs, figures and frozen configuration."""

    runs: list[str]
    seeds: int
    val: SplitFigures
    test: SplitFigures
    config: dict
    operating: dict  # reporting/clinical.py's operating_figures: calibration and the operating point
    selection: dict  # table.selection_figures: validation as the search measured the chosen configuration


class SeedWelch(TypedDict):
    """The difference of two arms' seed means, with Welch's t-test over the seeds."""

    diff: float
    ci: list[float]
    p_value: float
    df: float


class Gain(TypedDict, total=False):
    """pseudo = True - False on test: the ensembles' paired bootstrap, and the seed means."""

    gain: float
    ci: list[float]
    p_value: float
    n_boot: int
    of_seed_means: float
    seed_welch: SeedWelch  # with at least two seeds per arm


class Row(TypedDict, total=False):
    """One lead subset: its arms, the paper's validation figures, the gain (not for 12 leads)."""

    leads: str
    paper_val: dict[str, float]
    arms: dict[str, ArmFigures]  # "teacher", or "student" and "baseline"
    gain: Gain
    f1_gain: dict  # macro-F1 student - baseline at their operating points (paired bootstrap)


class Report(TypedDict, total=False):
    """report.json: the rows, what mattered, and the header (what was run)."""

    rows: list[Row]
    incomplete: list[str]  # lead subsets with one arm only (--no-baseline)
    classes: list[str]
    what_mattered: dict[str, dict]
    what_mattered_missing: str  # why What mattered is left out, when it is
    header: dict
    written: list[str]  # the files written into RUN_DIR, report.json included
