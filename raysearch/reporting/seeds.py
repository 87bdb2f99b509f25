"""The report's runs: each frozen configuration retrained with K new seeds as one Tune run on the
cluster (the students distilling from the search's own teacher), or, without --seeds, the search's
own single-seed runs; each finished run evaluated once (validation and test) into
RUN_DIR/report/runs/ARM-LEADS-seedN, so a rerun reuses it. Runs of the same configuration and seed
that exist already (the chosen finalists' the search kept, the other report's) are used instead of
trained again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from raysearch.errors import UserError
from raysearch.reporting.freeze import TEACHER
from raysearch.reporting.options import ReportOptions
from raysearch.searching.cluster import ray_cluster
from raysearch.searching.experiment import TrialSet, epochs_run, run_experiment
from raysearch.searching.options import ClusterOptions
from raysearch.searching.rundir import RunDir
from raysearch.searching.trainable import trained_network
from raysearch.training.checkpoint import load_checkpoint
from raysearch.training.config import PSEUDO, TrainConfig
from raysearch.training.evaluation import evaluate_frozen

log = logging.getLogger(__name__)


def seed_trials(frozen: dict, todo: list[tuple[str, int]], trial_constants: dict) -> TrialSet:
    """The seed runs still to train, as one trial_set: each frozen configuration with its new seed, as
    given (a FixedSearcher), named by what it trains so a rerun restores exactly this trial_set."""
    from raysearch.searching.searchers import FixedSearcher

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
    # another choice (report-first-run) trains other configurations under the same names: its own run
    key = todo if frozen["name"] == "report" else [frozen["name"], todo]
    tag = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:8]
    epochs = max(int(job["epochs"]) for job in jobs)
    return TrialSet(f"{frozen['name']}-{tag}", {}, len(jobs), epochs, FixedSearcher(jobs))


def reuse_runs(frozen: dict, seeds: list[int], run_dir: Path, device: str, data) -> list[str]:
    """Runs of the same configuration and seed that already exist, used instead of training them
    again: the chosen finalists' networks the search kept (RUN_DIR/best/ARM/seeds/seedN, evaluated
    here) and the other report's evaluated runs (report/ for report-first-run and back). One
    whose configuration is not the frozen one (but for its seed) is left alone."""
    import shutil

    out = run_dir / frozen["name"] / "runs"
    others = [run_dir / n / "runs" for n in ("report", "report-first-run") if n != frozen["name"]]
    reused = []
    for name, config in frozen["configs"].items():
        for seed in seeds:
            run = f"{name}-seed{seed}"
            if (out / run / "metrics.json").is_file():
                continue
            evaluated = [d / run for d in others if (d / run / "metrics.json").is_file()]
            kept = run_dir / "best" / name / "seeds" / f"seed{seed}"
            for source in evaluated + ([kept] if kept.is_dir() else []):
                saved = load_checkpoint(source)
                if _training_settings({**saved.config, "seed": seed}) != _training_settings(
                    {**config, "seed": seed}
                ):
                    continue
                if source == kept:
                    with data.unsealed():  # configurations frozen (configs.json) and this run trained
                        evaluate_frozen(saved, data, out / run, device, False)
                else:
                    shutil.copytree(source, out / run)
                reused.append(run)
                break
    return reused


def _training_settings(config: dict) -> dict:
    """What decides a run's network: its configuration without where and how it ran."""
    return {k: v for k, v in config.items() if k not in ("device", "threads", "n_boot", "extra")}


def run_seeds(options: ReportOptions, run_dir: RunDir, frozen: dict, data, seeds: list[int]) -> None:
    """Retrain every frozen configuration with each seed (the runs not already in report/runs, nor
    kept by the search's finalists) as one trial_set, then evaluate each finished run once
    (validation and test)."""
    out = run_dir.path / frozen["name"]
    reused = reuse_runs(frozen, seeds, run_dir.path, _eval_device(options), data)
    if reused:
        log.info(
            f"report: {len(reused)} run(s) of the same configuration and seed reused ({', '.join(reused)})"
        )
    todo = [
        (name, seed)
        for name in frozen["configs"]
        for seed in seeds
        if not (out / "runs" / f"{name}-seed{seed}" / "metrics.json").is_file()
    ]
    if not todo:
        return
    with ray_cluster(options, run_dir) as cluster:
        cluster.put_data(data)
        cluster.put_teachers({int(size): load_checkpoint(path) for size, path in frozen["teachers"].items()})
        trial_set = seed_trials(frozen, todo, cluster.trial_constants())
        log.info(
            f"report: training {len(todo)} run(s) of {len(seeds) * len(frozen['configs'])} ({len(seeds)} "
            f"seed(s) x {len(frozen['configs'])} arms; the others exist) as Tune run {trial_set.name}"
        )
        hint = "run the same report command again to continue"
        results = run_experiment(trial_set, cluster, run_dir, resume=True, resume_hint=hint)
        failed = []
        for result in results:
            run, epochs = result.config["run"], int(result.config["epochs"])
            if result.error is not None or epochs_run(result.metrics) != epochs:
                failed.append(run)
                continue
            with data.unsealed():  # configurations frozen (configs.json) and this run trained
                evaluate_frozen(
                    trained_network(result), data, out / "runs" / run, _eval_device(options), False
                )
        if failed:
            raise UserError(
                f"{len(failed)} report run(s) failed ({', '.join(sorted(failed))}); the others are saved "
                f"in {out / 'runs'}; see {run_dir.location}/{trial_set.name}"
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
        with data.unsealed():  # the teacher was chosen by the search, on validation
            evaluate_frozen(load_checkpoint(frozen["teachers"][size]), data, teacher_out, "auto", False)
    runs[TEACHER] = [teacher_out]
    return runs
