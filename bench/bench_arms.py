"""Simulated paper-scale search: the arms one after another (before) vs every arm at once (after).

    python bench/bench_arms.py                                  # virtual clock, 64 slots
    python bench/bench_arms.py --engine ray --scale 0.5 --parts after   # Ray, sleeping trials

The search `--leads 2,3,4,6 --trials 64 --teacher-trials 2` over search_spaces/default.yaml,
built by raysearch's own plans (teacher_search, arm_search: each arm's TPE, its ASHA, the default
space's epochs), on --slots GPU slots. No trial trains: an epoch lasts what the H100 measured
(BENCHMARKS.md: 4.4 s per teacher epoch, 5.6 s per student or baseline trial-epoch with 8 trials
packed on a GPU) and reports a made-up validation AUC that depends on the configuration (so TPE
and ASHA have something to rank).

    before  the teacher stage, then each arm as its own experiment, one after another
    after   plan.combine: every arm in one experiment, the students once the teacher ended
    ideal   the trials' summed time / slots, or the longest trial if that is larger

--engine virtual (default) runs the searchers and schedulers themselves (CombinedSearcher,
CombinedScheduler, AshaAwareOptunaSearch, ASHAScheduler, FixedSearcher: the objects Tune would drive)
on a simulated clock: a free slot asks the searcher for a trial, each epoch's result goes to the
searcher and the scheduler, a stopped or finished trial frees its slot. Exact, in seconds, and
free of this machine's limits. --engine ray runs the same plans with plan.run_experiment on a local Ray
with --slots of a custom resource (`gpu_slot`), trials sleeping the epoch times x --scale: Tune's
own controller, but on a 2-core machine 64 trial processes take minutes to start (Ray starts at
most one worker per core at a time), which a cluster's nodes do in parallel.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

EPOCH_SECONDS = {"teacher": 4.4, "student": 5.6, "baseline": 5.6}  # H100, BENCHMARKS.md


class SimOptions:
    verbose = False
    max_failures = 0


class SimSession:
    """What run_experiment needs of a Cluster: a trainable (here one that sleeps), its slots."""

    def __init__(self, slots: int, scale: float):
        self.options, self.max_concurrent, self.scale = SimOptions(), slots, scale

    def trial_constants(self) -> dict:
        return {"threads": 1, "device": "cpu", "sim_scale": self.scale}

    def trainable(self):
        from ray import tune

        def sim_trial(config):
            import time as clock

            from ray import tune as t

            for epoch in range(1, config["epochs"] + 1):
                clock.sleep(EPOCH_SECONDS[config["stage"]] * config["sim_scale"])
                t.report({"val_macro_auc": sim_auc(config, epoch)})

        return tune.with_resources(sim_trial, {"cpu": 0, "gpu_slot": 1})


def build(cluster: SimSession, leads: list[str], trials: int):
    from raysearch.searching.budget import PAPER_SPACE, arm_search, default_space_path, teacher_search
    from raysearch.searching.options import SearchOptions
    from raysearch.searching.space import embedding_sizes, load_space

    space = load_space(default_space_path(PAPER_SPACE))
    options = SearchOptions(leads=",".join(leads), trials=trials, teacher_trials=2, seed=0)
    teacher = teacher_search(space, embedding_sizes(space, leads), options, cluster)
    arms = [
        arm_search(space, lead, arm, options, cluster, None)
        for lead in leads
        for arm in ("student", "baseline")
    ]
    return teacher, arms


def sim_auc(config: dict, epoch: int) -> float:
    """The made-up validation AUC of a configuration after `epoch` epochs (no noise: reproducible)."""
    import math

    level = {"teacher": 0.93, "student": 0.905, "baseline": 0.90}[config["stage"]]
    level -= 0.02 * (math.log10(config["lr"]) + 2.5) ** 2 + 0.002 * abs(math.log10(config.get("alpha", 1)))
    return level * (1 - 0.3 * math.exp(-epoch / 5))


class VirtualTrial:
    """What a searcher's gates and a scheduler read of a Tune Trial."""

    def __init__(self, n: int, config: dict):
        self.n, self.trial_id, self.config = n, f"v{n:05d}", config
        self.status, self.last_result = "RUNNING", {}


class Durations(list):
    """Trial durations, and the epochs those trials ran."""

    epochs = 0


def run_virtual(plan, slots: int) -> tuple[float, list[float]]:
    """One plan (one experiment) on `slots` slots on a simulated clock: its makespan (seconds)
    and every trial's duration."""
    import heapq

    from ray.tune.schedulers import FIFOScheduler, TrialScheduler
    from ray.tune.search import Searcher

    searcher, scheduler = plan.searcher, plan.scheduler or FIFOScheduler()
    clock, events, durations, free, n, finished = 0.0, [], Durations(), slots, 0, False
    while True:
        while free and not finished:  # every free slot asks for a trial, as Tune does
            config = searcher.suggest(f"v{n:05d}")
            finished = config == Searcher.FINISHED or n + 1 >= plan.num_samples
            if not isinstance(config, dict):
                break
            trial = VirtualTrial(n, {**plan.param_space, **config})
            scheduler.on_trial_add(None, trial)
            heapq.heappush(events, (clock + EPOCH_SECONDS[trial.config["stage"]], n, trial, 1, clock))
            n, free = n + 1, free - 1
        if not events:
            if not finished:
                raise RuntimeError(f"{plan.name}: the searcher waits but no trial runs")
            return clock, durations
        clock, _, trial, epoch, started = heapq.heappop(events)
        result = {"training_iteration": epoch, "val_macro_auc": sim_auc(trial.config, epoch)}
        trial.last_result = result
        searcher.on_trial_result(trial.trial_id, result)
        decision = scheduler.on_trial_result(None, trial, result)
        if decision == TrialScheduler.CONTINUE and epoch < trial.config["epochs"]:
            step = EPOCH_SECONDS[trial.config["stage"]]
            heapq.heappush(events, (clock + step, trial.n, trial, epoch + 1, started))
            continue
        trial.status = "TERMINATED"
        durations.epochs += epoch
        searcher.on_trial_complete(trial.trial_id, result=result)
        if decision == TrialScheduler.CONTINUE:  # ran every epoch (ASHA recorded a stopped one)
            scheduler.on_trial_complete(None, trial, result)
        durations.append(clock - started)
        free += 1


def trial_seconds(results: list) -> list[float]:
    return [r.metrics.get("time_total_s", 0.0) for r in results if r.metrics]


def figures(wall: float, durations: list[float], slots: int, scale: float) -> dict:
    """Wall time, the ideal and their ratio, in H100 minutes (`scale`: simulated s per H100 s)."""
    ideal = max(sum(durations) / slots, max(durations))
    return {
        "h100_min": round(wall / scale / 60, 2),
        "ideal_h100_min": round(ideal / scale / 60, 2),
        "vs_ideal": round(wall / ideal, 3),
        "trials": len(durations),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("virtual", "ray"), default="virtual")
    parser.add_argument(
        "--scale", type=float, default=0.5, help="ray: sleep this share of the H100's epoch times"
    )
    parser.add_argument("--slots", type=int, default=64)
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--leads", default="2,3,4,6")
    parser.add_argument("--parts", default="after,before")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import logging

    import optuna

    from raysearch.searching.combined import CombinedSearcher
    from raysearch.searching.experiment import combine
    from raysearch.searching.ray_compat import AshaAwareOptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    AshaAwareOptunaSearch.keep_studies_in(None)
    CombinedSearcher.hooks = {}  # the teacher hand-over takes no time here
    leads = args.leads.split(",")
    scale = args.scale if args.engine == "ray" else 1.0
    cluster = SimSession(args.slots, scale)
    out = {
        "command": " ".join(["python", *sys.argv]),
        "date": time.strftime("%Y-%m-%d"),
        "engine": args.engine,
        "slots": args.slots,
        "leads": leads,
        "trials": args.trials,
        "cpus": os.cpu_count(),
    }
    if args.engine == "ray":
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(args.slots)  # as on a cluster with that many CPUs
        os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
        import ray

        for name in ("ray", "ray.tune", "ray.train", "ray.air"):
            logging.getLogger(name).setLevel(logging.ERROR)
        ray_tmp = tempfile.mkdtemp(prefix="rs", dir="/tmp")
        storage = tempfile.mkdtemp(prefix="bench-arms-")
        ray.init(
            num_cpus=os.cpu_count(),
            resources={"gpu_slot": args.slots},
            include_dashboard=False,
            log_to_driver=False,
            _temp_dir=ray_tmp,
            logging_level=logging.ERROR,
        )
        out["scale"] = scale
    try:
        for part in args.parts.split(","):
            teacher, arms = build(cluster, leads, args.trials)
            after = {p.name: "teacher" for p in arms if p.param_space["pseudo"]}
            plans = [combine("trials", [teacher, *arms], after)] if part == "after" else [teacher, *arms]
            wall, durations, per_plan, epochs = 0.0, [], {}, 0
            for plan in plans:
                if args.engine == "virtual":
                    seconds, mine = run_virtual(plan, args.slots)
                    epochs += mine.epochs
                else:
                    from raysearch.searching.experiment import run_experiment
                    from raysearch.searching.rundir import RunDir

                    t0 = time.perf_counter()
                    results = run_experiment(plan, cluster, RunDir(storage, part), False, "")
                    seconds, mine = time.perf_counter() - t0, trial_seconds(results)
                    epochs += sum(r.metrics.get("training_iteration", 0) for r in results if r.metrics)
                wall, durations = wall + seconds, durations + mine
                per_plan[plan.name] = round(seconds / scale / 60, 2)
            out[part] = {
                **figures(wall, durations, args.slots, scale),
                "trial_epochs": epochs,
                "per_experiment_h100_min": per_plan,
            }
            print(part, json.dumps(out[part]), flush=True)
    finally:
        if args.engine == "ray":
            ray.shutdown()
            shutil.rmtree(ray_tmp, ignore_errors=True)
            shutil.rmtree(storage, ignore_errors=True)
    if "after" in out and "before" in out:
        out["before_over_after"] = round(out["before"]["h100_min"] / out["after"]["h100_min"], 2)
    print(json.dumps(out, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
