"""The Python API: what the command line does, for notebooks and scripts.

    import raysearch
    summary = raysearch.search(leads="4", trials=8, data="synthetic", space="tiny")
    report = raysearch.report(summary["run_dir"], seeds=2)
    model = raysearch.load_model(summary["leads"]["4"]["student"]["best_dir"])
    probabilities = model.predict(signals, metadata)   # (n, 5): NORM, MI, STTC, CD, HYP

The keyword arguments are the command line's options with underscores (`gpus_per_trial=0.25`,
`no_baseline=True`); see SearchOptions (searching/options.py) and ReportOptions (reporting/options.py).
"""

from __future__ import annotations

import os

from raysearch.deploy.load import load_model as _load_model
from raysearch.log import messages_on_stderr
from raysearch.reporting.options import ReportOptions
from raysearch.reporting.run import run_report
from raysearch.searching.options import SearchOptions
from raysearch.searching.run import run_search


def search(**options) -> dict:
    """Run (or `resume=True`) a search; returns its summary: per lead subset and arm the chosen
    configuration, its validation and test macro-AUC, and `best_dir`, the chosen model's folder."""
    with messages_on_stderr(only_if_unconfigured=True):
        return run_search(SearchOptions(**options))


def report(run_dir: str, **options) -> dict:
    """Table 1 of a finished search (`seeds=K` retrains each chosen configuration K times); returns
    report.json's contents and writes report.{md,csv,json,png} into RUN_DIR."""
    with messages_on_stderr(only_if_unconfigured=True):
        return run_report(ReportOptions(run_dir=str(run_dir), **options))


def load_model(path: str | os.PathLike, device: str = "cpu", precision: str = ""):
    """A trained model whose `predict(signals, metadata)` gives class probabilities: a model folder
    (model.pt + config.json, or a RUN_DIR holding one) or a file written by `raysearch export`
    (ONNX, run with onnxruntime, .pt2 or TorchScript). `precision` overrides a folder's autocast."""
    return _load_model(path, device, precision)
