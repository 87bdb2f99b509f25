"""`python -m raysearch report RUN_DIR [--seeds K]`: the paper's Table 1 from a finished search.

1. freeze  every arm's configuration as the search chose it on the validation fold
           (RUN_DIR/best/ARM-LEADS) and the best 12-lead teacher (RUN_DIR/teachers), written to
           RUN_DIR/report/configs.json before anything else. Until then the test fold is sealed
           (PTBXL.test_sealed), and the trials only ever see a sealed copy.
2. seeds   (--seeds K) each frozen configuration retrained with K new seeds (search seed + 1..K)
           as one Tune run, a grid over arm x seed, in parallel on the cluster; the students
           distil from the search's own stage-1 teacher of their embedding size, shared through
           the object store. Without --seeds the search's own single-seed runs are used.
3. test    each run's final network evaluated once on validation and test, saved under
           RUN_DIR/report/runs/ARM-LEADS-seedN (a rerun reuses them; an interrupted report
           resumes its Tune run).
4. table   per lead subset and arm, test macro-AUC mean +- std over seeds and the macro-AUC of
           the seed-ensembled predictions with its bootstrap CI; the gain pseudo = True - False
           of the ensembles with a paired bootstrap CI and p-value (the same resampled test
           records for both arms); the difference of the seed means with Welch's t-test over the
           seeds (retraining noise); validation beside test; the paper's validation figure.
           Written as RUN_DIR/report.{md,csv,json,png} and printed.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from raysearch.checkpoint import load_checkpoint
from raysearch.data import require_answerable
from raysearch.errors import UserError, first_line
from raysearch.files import write_text, write_with
from raysearch.importance import what_mattered
from raysearch.metrics import bootstrap_ci, macro_auc, paired_bootstrap, per_class_auc, seed_welch
from raysearch.plan import Plan, epochs_run, evaluate_trial, run_plan
from raysearch.render import markdown, plot, plot_mattered, write_csv
from raysearch.rundir import RunDir
from raysearch.session import ClusterOptions, ray_session
from raysearch.sources import DataOptions, open_dataset
from raysearch.train import TrainConfig, evaluate_frozen, teacher_source
from raysearch.vocabulary import ARMS, CLASSES, PAPER_VAL_AUC, PSEUDO, TABLE_ROWS, derived_seed

TEACHER = "teacher-12"  # the report's name for the 12-lead row's run


# ------------------------------------------------------------------------------- 1. freeze


def _saved(run_dir: Path, what: str) -> dict:
    path = run_dir / "config.json"
    if not path.is_file():
        raise UserError(f"{path}: missing; expected the {what} saved by the search")
    return json.loads(path.read_text())["config"]


def freeze(run_dir: Path, location: str | None = None) -> dict:
    """Every arm's configuration as the search chose it (validation fold only): {name: config},
    plus where each teacher lives. Raises UserError, naming `location` (RUN_DIR as the user gave
    it), when RUN_DIR is not a finished search."""
    path = run_dir / "summary.json"
    if not path.is_file():
        raise UserError(
            f"{location or run_dir}/summary.json: missing; expected the RUN_DIR of a finished search "
            f"(it writes summary.json when every stage is done)"
        )
    summary = json.loads(path.read_text())
    teacher_dirs = {}
    for size, t in summary["teachers"].items():
        saved = run_dir / "teachers" / size
        teacher_dirs[int(size)] = str(saved if saved.is_dir() else Path(t["given"]))
    # the 12-lead row: the teacher the search rated best on validation (a given one has no score)
    best = max(summary["teachers"], key=lambda s: summary["teachers"][s].get("val_macro_auc", -1.0))
    configs = {TEACHER: load_checkpoint(teacher_dirs[int(best)])["config"]}
    for leads, arms in summary["leads"].items():
        for arm in arms:
            configs[f"{arm}-{leads}"] = _saved(run_dir / "best" / f"{arm}-{leads}", f"chosen {arm}")
    return {
        "configs": configs,
        "teachers": {str(k): v for k, v in teacher_dirs.items()},
        "search_seed": int(summary.get("seed", 0)),
        "summary": summary,
    }


def write_frozen(out: Path, frozen: dict) -> str:
    """Write configs.json (before any training or test read); its digest goes in the header."""
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(
        {k: frozen[k] for k in ("configs", "teachers", "search_seed")}, indent=1, sort_keys=True
    )
    write_text(out / "configs.json", text)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# -------------------------------------------------------------------------------- 2. seeds


def seed_plan(frozen: dict, todo: list[tuple[str, int]], trial_constants: dict) -> Plan:
    """The seed runs still to train, as one plan: each frozen configuration with its new seed, as
    given (a FixedSearcher), named by what it trains so a rerun restores exactly this plan."""
    from raysearch.tune_ext import FixedSearcher

    jobs = [
        {
            **frozen["configs"][name],
            **trial_constants,
            "seed": seed,
            "run": f"{name}-seed{seed}",
            "pseudo": PSEUDO[frozen["configs"][name]["stage"]],
        }
        for name, seed in todo
    ]
    tag = hashlib.sha256(json.dumps(todo).encode()).hexdigest()[:8]
    epochs = max(int(job["epochs"]) for job in jobs)
    return Plan(f"report-{tag}", {}, len(jobs), epochs, FixedSearcher(jobs))


def run_seeds(options: ReportOptions, run_dir: RunDir, frozen: dict, data, seeds: list[int]) -> None:
    """Retrain every frozen configuration with each seed (the runs not already in report/runs) as
    one plan, then evaluate each finished run once (validation and test)."""
    out = run_dir.path / "report"
    todo = [
        (name, seed)
        for name in frozen["configs"]
        for seed in seeds
        if not (out / "runs" / f"{name}-seed{seed}" / "metrics.json").is_file()
    ]
    if not todo:
        return
    with ray_session(options, run_dir) as session:
        session.put_data(data)
        session.put_teachers({int(size): load_checkpoint(path) for size, path in frozen["teachers"].items()})
        plan = seed_plan(frozen, todo, session.trial_constants())
        print(
            f"report: training {len(todo)} run(s) ({len(seeds)} seed(s) x {len(frozen['configs'])} "
            f"arms) as Tune run {plan.name}",
            file=sys.stderr,
            flush=True,
        )
        hint = "run the same report command again to continue"
        results = run_plan(plan, session, run_dir, resume=True, resume_hint=hint)
        failed = []
        for result in results:
            run, epochs = result.config["run"], int(result.config["epochs"])
            if result.error is not None or epochs_run(result.metrics) != epochs:
                failed.append(run)
                continue
            data.test_sealed = False  # configurations frozen (configs.json) and this run trained
            evaluate_trial(result, data, out / "runs" / run, _eval_device(options), with_ci=False)
        if failed:
            raise UserError(
                f"{len(failed)} report run(s) failed ({', '.join(sorted(failed))}); the others are saved "
                f"in {out / 'runs'}; see {run_dir.location}/{plan.name}"
            )


def _eval_device(options: ClusterOptions) -> str:
    """The driver evaluates on the GPU only when trials use GPUs (it may sit on a CPU-only head)."""
    return "auto" if options.gpus_per_trial > 0 else "cpu"


def single_seed(frozen: dict, data, out: Path, run_dir: Path) -> dict[str, list[Path]]:
    """Without --seeds: the search's own runs (RUN_DIR/best), the teacher evaluated here once."""
    runs = {name: [run_dir / "best" / name] for name in frozen["configs"] if name != TEACHER}
    seed = frozen["search_seed"]
    teacher_out = out / "runs" / f"{TEACHER}-seed{seed}"
    if not (teacher_out / "metrics.json").is_file():
        size = str(TrainConfig(**frozen["configs"][TEACHER]).embedding_size)
        data.test_sealed = False  # the teacher was chosen by the search, on validation
        evaluate_frozen(load_checkpoint(frozen["teachers"][size]), data, teacher_out, "auto", with_ci=False)
    runs[TEACHER] = [teacher_out]
    return runs


# -------------------------------------------------------------------------------- 3. table


def _load(runs: list[Path], split: str) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    arrays = []
    for run in runs:
        path = run / f"predictions_{split}.npz"
        try:
            arrays.append(np.load(path))
        except (OSError, ValueError) as e:  # missing, truncated, not an npz
            reason = "missing" if not path.exists() else f"unreadable ({first_line(e, 120)})"
            raise UserError(
                f"{path}: {reason}; expected the predictions raysearch saved beside that run's metrics.json"
            ) from None
    for a, r in zip(arrays, runs, strict=True):
        if not np.array_equal(a["ecg_id"], arrays[0]["ecg_id"]):
            raise UserError(
                f"{r}: scored other {split} records than {runs[0]}; were they made from one dataset?"
            )
    return arrays[0]["ecg_id"], arrays[0]["y_true"], [a["y_score"] for a in arrays]


def arm_figures(runs: list[Path], loaded: dict, n_boot: int) -> dict:
    """Per split (`loaded`: split -> _load's tuple): each seed's macro-AUC, their mean and std,
    and the seed-ensembled predictions' macro-AUC (with a bootstrap CI on test) and per-class AUC."""
    out = {"runs": [str(r) for r in runs], "seeds": len(runs)}
    for split, (_, y, scores) in loaded.items():
        per_seed = [macro_auc(y, s) for s in scores]
        ensemble = np.mean(scores, axis=0)
        fig = {
            "per_seed": per_seed,
            "mean": float(np.mean(per_seed)),
            "std": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else None,
            "ensemble": macro_auc(y, ensemble),
            "ensemble_per_class": dict(zip(CLASSES, per_class_auc(y, ensemble).tolist(), strict=True)),
        }
        if split == "test":
            fig["ensemble_ci"] = list(bootstrap_ci(y, ensemble, n_boot=n_boot, seed=0))
        out[split] = fig
    return out


def build_report(runs: dict[str, list[Path]], frozen: dict, n_boot: int) -> dict:
    """The table's numbers: one row per lead subset (12 = the teacher)."""
    rows, incomplete = [], []
    for leads in TABLE_ROWS:
        arms = [TEACHER] if leads == "12" else [f"{a}-{leads}" for a in ARMS]
        if not all(a in runs for a in arms):
            if any(a in runs for a in arms):  # e.g. a search run with --no-baseline: no comparison
                incomplete.append(leads)
            continue
        loaded = {a: {split: _load(runs[a], split) for split in ("val", "test")} for a in arms}
        row = {"leads": leads, "paper_val": PAPER_VAL_AUC.get(leads, {}), "arms": {}}
        for a in arms:
            row["arms"][a.split("-")[0]] = {
                **arm_figures(runs[a], loaded[a], n_boot),
                "config": frozen["configs"][a],
            }
        if leads != "12":
            ids, y, s = loaded[f"student-{leads}"]["test"]
            other, _, b = loaded[f"baseline-{leads}"]["test"]
            if not np.array_equal(ids, other):  # the paired bootstrap pairs records by position
                raise UserError(f"{leads} leads: the two arms scored different test records")
            row["gain"] = paired_bootstrap(y, np.mean(s, axis=0), np.mean(b, axis=0), n_boot=n_boot, seed=0)
            per_seed = [row["arms"][a]["test"]["per_seed"] for a in ARMS]
            row["gain"]["of_seed_means"] = float(np.mean(per_seed[0]) - np.mean(per_seed[1]))
            if min(map(len, per_seed)) > 1:  # training noise: the seeds' spread, Welch's t-test
                row["gain"]["seed_welch"] = seed_welch(*per_seed)
        rows.append(row)
    return {"rows": rows, "incomplete": incomplete, "classes": list(CLASSES)}


# ------------------------------------------------------------------------------- 4. outputs


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


# ----------------------------------------------------------------------------------- driver


@dataclass
class ReportOptions(DataOptions, ClusterOptions):
    """What `raysearch report` is asked (the CLI's options; `raysearch.report`'s arguments)."""

    run_dir: str = ""  # the RUN_DIR of a finished search: a path or the URI it stored to
    seeds: int | None = None  # retrain each chosen configuration with K new seeds; None: single-seed
    n_boot: int = 1000
    data: str | None = None  # None: the search's own --data


def _tables(options: ReportOptions, run_dir: RunDir, frozen: dict, digest: str, t0: float) -> dict:
    """Everything after the freeze: the runs (seeded or the search's), the table, its files."""
    out = run_dir.path / "report"
    summary = frozen["summary"]
    data = open_dataset(replace(options, data=options.data or summary["data"]))  # a DataOptions too
    require_answerable(data)
    data.test_sealed = True  # opened by the steps below, each after configs.json exists
    k = options.seeds
    seeds = [derived_seed(frozen["search_seed"], 1 + i) for i in range(k)] if k else [frozen["search_seed"]]
    if k:
        run_seeds(options, run_dir, frozen, data, seeds)
        runs = {name: [out / "runs" / f"{name}-seed{s}" for s in seeds] for name in frozen["configs"]}
    else:
        runs = single_seed(frozen, data, out, run_dir.path)
    report = build_report(runs, frozen, options.n_boot)
    try:
        report["what_mattered"] = what_mattered(run_dir.path / "optuna.db", frozen["search_seed"])
    except UserError as e:  # the studies are a record beside the search: the table stands without
        report["what_mattered"], report["what_mattered_missing"] = {}, str(e)
        print(f"raysearch: {e}: the report leaves out What mattered", file=sys.stderr)
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
        "space": summary["space"],
        "trials": summary["trials"],
        "search_seed": frozen["search_seed"],
        "budget": _budget(frozen["configs"]),
        "device": _device(options),
        "wall": {
            # searches before the total was kept recorded their last invocation only
            "search": _minutes(summary.get("wall_seconds", summary.get("wall_seconds_this_invocation"))),
            "search_invocations": summary.get("invocations"),
            "report": _minutes(time.perf_counter() - t0),
            # the seed runs may have been trained by an earlier invocation: their own epoch times
            "runs_training": _minutes(_training_seconds(runs)),
        },
    }
    return report


def _minutes(seconds) -> str:
    return "?" if seconds is None else f"{seconds / 60:.1f} min"


def run_report(options: ReportOptions) -> dict:
    """Freeze, train the seed runs (if asked), build the table; write report.{md,csv,json,png}
    into RUN_DIR (synced back to a URI RUN_DIR) and return the report (report.json's contents)."""
    if options.seeds is not None and options.seeds < 1:
        raise UserError(f"--seeds {options.seeds}: expected at least 1")
    if options.n_boot < 1:
        raise UserError(f"--n-boot {options.n_boot}: expected at least 1 bootstrap resample")
    options.check()
    t0 = time.perf_counter()
    run_dir = RunDir.at(options.run_dir)
    if run_dir.uri is None and not run_dir.path.is_dir():
        raise UserError(f"{run_dir.path}: no such folder; expected the RUN_DIR of a finished search")
    with run_dir.owned(fresh=False):  # one process writes the report at a time
        return _report(options, run_dir, t0)


def _report(options: ReportOptions, run_dir: RunDir, t0: float) -> dict:
    run_dir.sync("down", ("summary.json", "progress.json", "optuna.db", "teachers", "best", "report"))
    frozen = freeze(run_dir.path, run_dir.location)
    digest = write_frozen(run_dir.path / "report", frozen)  # before any training or test read
    run_dir.sync("up")  # configs.json at RUN_DIR before anything reads the test fold
    try:
        report = _tables(options, run_dir, frozen, digest, t0)
        write_text(run_dir.path / "report.json", json.dumps(report, indent=1))
        write_with(run_dir.path / "report.csv", lambda tmp: write_csv(report, tmp))
        write_with(run_dir.path / "report.png", lambda tmp: plot(report, tmp))
        if any(m["points"] for m in report["what_mattered"].values()):
            write_with(
                run_dir.path / "report-mattered.png", lambda tmp: plot_mattered(report["what_mattered"], tmp)
            )
        write_text(run_dir.path / "report.md", markdown(report))
    finally:
        run_dir.sync("up")  # what was made, the runs evaluated so far too when some failed
    return report
