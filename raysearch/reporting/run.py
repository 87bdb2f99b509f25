"""`python -m raysearch report RUN_DIR [--seeds K]`, or `raysearch.report(run_dir)`: freeze the
search's choices (freeze.py), get the runs (seeds.py), build the table (table.py) and write
RUN_DIR/report.{md,csv,json,png} (synced back to a URI RUN_DIR); the test fold is sealed until
configs.json exists.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import replace
from pathlib import Path

from raysearch.data.dataset import open_dataset
from raysearch.data.ptbxl import require_answerable
from raysearch.errors import UserError
from raysearch.files import write_text, write_with
from raysearch.reporting.csvfile import write_csv
from raysearch.reporting.figures import Report
from raysearch.reporting.freeze import TEACHER, freeze, write_frozen
from raysearch.reporting.importance import what_mattered
from raysearch.reporting.markdown import markdown
from raysearch.reporting.options import ReportOptions
from raysearch.reporting.plots import plot, plot_calibration, plot_mattered
from raysearch.reporting.seeds import run_seeds, single_seed
from raysearch.reporting.table import build_report
from raysearch.searching.finalists import finalist_seeds
from raysearch.searching.options import ClusterOptions
from raysearch.searching.rundir import RunDir
from raysearch.training.config import TrainConfig
from raysearch.training.embeddings import teacher_source
from raysearch.training.operating import check_rule

log = logging.getLogger(__name__)


def _budget(configs: dict) -> str:
    parts = []
    for name in (TEACHER, next((n for n in configs if n.startswith("student")), None)):
        if name:
            c = TrainConfig(**configs[name]).resolved()
            parts.append(
                f"{c.stage}: {c.arch} width {c.width} depth {c.depth}, {c.epochs} epochs, "
                f"batch {c.batch_size}, {c.crop_seconds} s crops, {c.precision}"
                + (f", the teacher seen through {teacher_source(c)}" if c.stage == "student" else "")
            )
    return "; ".join(parts)


def _device(options: ClusterOptions) -> str:
    import torch

    if options.gpus_per_trial > 0 and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, {options.gpus_per_trial:g} GPU per trial"
    return f"CPU, {os.cpu_count()} cores, {options.cpus_per_trial:g} per trial"


def _training_seconds(runs: dict[str, list[Path]]) -> float:
    """Sum of the epoch times (training + validation) of every run in the table."""
    total = 0.0
    for paths in runs.values():
        for path in paths:
            history = json.loads((path / "metrics.json").read_text()).get("history", [])
            total += sum(h.get("epoch_seconds", 0.0) for h in history)
    return total


def _tables(options: ReportOptions, run_dir: RunDir, frozen: dict, digest: str, t0: float) -> Report:
    """Everything after the freeze: the runs (seeded or the search's), the table, its files."""
    out = run_dir.path / frozen["name"]
    summary = frozen["summary"]
    data = open_dataset(replace(options, data=options.data or summary["data"]))  # a DataOptions too
    require_answerable(data)
    data.test_sealed = True  # opened by the steps below, each after configs.json exists
    k = options.seeds
    seeds = finalist_seeds(frozen["search_seed"], k) if k else [frozen["search_seed"]]
    if k:
        run_seeds(options, run_dir, frozen, data, seeds)
        runs = {name: [out / "runs" / f"{name}-seed{s}" for s in seeds] for name in frozen["configs"]}
    elif frozen["name"] != "report":  # another choice than the search's: its runs are not kept
        raise UserError(
            f"--chosen-by {frozen['chosen_by']}: the search kept the networks of its own choices only; "
            f"add --seeds K to retrain these"
        )
    else:
        runs = single_seed(frozen, data, out, run_dir.path)

    def fitted(points: dict) -> None:  # before any test prediction is loaded
        operating = {name: point.to_dict() for name, point in points.items()}
        write_text(out / "operating.json", json.dumps(operating, indent=1))

    report = build_report(runs, frozen, options.n_boot, options.threshold_rule, fitted)
    try:
        floors = {  # each arm's retraining noise, measured by its finalists
            f"{arm}-{leads}": (r.get("finalists") or {}).get("noise_floor")
            for leads, arms in summary["leads"].items()
            for arm, r in arms.items()
        }
        report["what_mattered"] = what_mattered(run_dir.path / "optuna.db", frozen["search_seed"], floors)
    except UserError as e:  # the studies are a record beside the search: the table stands without
        report["what_mattered"], report["what_mattered_missing"] = {}, str(e)
        log.warning(f"raysearch: {e}: the report leaves out What mattered")
    for row in report["rows"]:  # name the runs where they live (a URI RUN_DIR's, not the staging)
        for fig in row["arms"].values():
            fig["runs"] = [run_dir.located(Path(r)) for r in fig["runs"]]
    report["header"] = {
        "run_dir": run_dir.location,
        "seeds": k or 1,
        "seed_values": seeds,
        "configs_sha256": digest,
        "data": summary["data"],
        "synthetic": bool(summary.get("synthetic", data.synthetic)),
        "records": summary["records"],
        "database_records": summary.get("database_records"),
        "space": summary["space"],
        "trials": summary["trials"],
        "search_seed": frozen["search_seed"],
        "chosen_by": frozen["chosen_by"],
        "budget": _budget(frozen["configs"]),
        "device": _device(options),
        "wall": {
            # searches before the total was kept recorded their last invocation only
            "search": _minutes(summary["wall_seconds"]),
            "search_invocations": summary["invocations"],
            "report": _minutes(time.perf_counter() - t0),
            # the seed runs may have been trained by an earlier invocation: their own epoch times
            "runs_training": _minutes(_training_seconds(runs)),
        },
    }
    return report


def _minutes(seconds) -> str:
    return "?" if seconds is None else f"{seconds / 60:.1f} min"


def run_report(options: ReportOptions) -> Report:
    """Freeze, train the seed runs (if asked), build the table; write report.{md,csv,json,png}
    into RUN_DIR (synced back to a URI RUN_DIR) and return the report (report.json's contents)."""
    if options.seeds is not None and options.seeds < 1:
        raise UserError(f"--seeds {options.seeds}: expected at least 1")
    if options.n_boot < 1:
        raise UserError(f"--n-boot {options.n_boot}: expected at least 1 bootstrap resample")
    check_rule(options.threshold_rule)
    options.check()
    t0 = time.perf_counter()
    run_dir = RunDir.at(options.run_dir)
    if run_dir.uri is None and not run_dir.path.is_dir():
        raise UserError(f"{run_dir.path}: no such folder; expected the RUN_DIR of a finished search")
    with run_dir.owned(fresh=False):  # one process writes the report at a time
        return _report(options, run_dir, t0)


def _report(options: ReportOptions, run_dir: RunDir, t0: float) -> Report:
    from raysearch.reporting.options import CHOSEN_BY

    if options.chosen_by not in (None, *CHOSEN_BY):
        raise UserError(f"--chosen-by {options.chosen_by}: expected one of {', '.join(CHOSEN_BY)}")
    kept = ("summary.json", "progress.json", "optuna.db", "teachers", "best", "report", "report-first-run")
    run_dir.sync("down", kept)
    frozen = freeze(run_dir.path, run_dir.location, options.chosen_by)
    name = frozen["name"]  # report, or report-first-run beside it
    digest = write_frozen(run_dir.path / name, frozen)  # before any training or test read
    run_dir.sync("up")  # configs.json at RUN_DIR before anything reads the test fold
    try:
        report = _tables(options, run_dir, frozen, digest, t0)
        mattered = any(m["points"] for m in report["what_mattered"].values())
        report["written"] = [f"{name}.md", f"{name}.csv", f"{name}.json", f"{name}.png"]
        report["written"] += [f"{name}-mattered.png"] if mattered else []
        report["written"] += [f"{name}-calibration.png"]
        path = run_dir.path
        write_text(path / f"{name}.json", json.dumps(report, indent=1))
        write_with(path / f"{name}.csv", lambda tmp: write_csv(report, tmp))
        write_with(path / f"{name}.png", lambda tmp: plot(report, tmp))
        if mattered:
            write_with(path / f"{name}-mattered.png", lambda tmp: plot_mattered(report["what_mattered"], tmp))
        write_with(path / f"{name}-calibration.png", lambda tmp: plot_calibration(report, tmp))
        write_text(path / f"{name}.md", markdown(report))
    finally:
        run_dir.sync("up")  # what was made, the runs evaluated so far too when some failed
    return report
