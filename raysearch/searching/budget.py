"""The trial sets a search runs, made from the space file and the options: the teacher search
(`teacher_trials` seeded random configurations per embedding size) and, per lead subset, the
student and baseline arms (Optuna's TPE, seeded, with ASHA), each with its trial budget; and which
space file a search uses when none is named.
"""

from __future__ import annotations

from pathlib import Path

from raysearch.searching.cluster import Cluster
from raysearch.searching.experiment import TrialSet
from raysearch.searching.options import SearchOptions
from raysearch.searching.progress import expected_epochs
from raysearch.searching.space import space_path, stage_space, to_optuna, to_tune
from raysearch.training.config import METRIC, MODE, PSEUDO, TrainConfig, arm_name, derived_seed

PAPER_SPACE = "default"  # the paper's budget: meant for GPUs
CPU_SPACE = "cpu"  # a budget a 2-core machine finishes in about half an hour


def plain_config(config: dict, keys) -> dict:
    return {k: (config[k].item() if hasattr(config[k], "item") else config[k]) for k in keys if k in config}


def teacher_search(space: dict, sizes: list[int], options: SearchOptions, cluster: Cluster) -> TrialSet:
    """The teacher search: `teacher_trials` random configurations per embedding size, sampled
    from the space with a generator seeded by --seed (the same seed, the same teachers)."""
    import numpy as np

    from raysearch.searching.searchers import FixedSearcher

    constants, dists, _ = stage_space(space, "teacher")
    dists.pop("embedding_size", None)
    domains = to_tune(dists)
    rng = np.random.RandomState(options.seed)
    configs = [
        {
            "embedding_size": size,
            **plain_config({k: d.sample(random_state=rng) for k, d in domains.items()}, domains),
        }
        for size in sizes
        for _ in range(options.teacher_trials)
    ]
    param_space = {
        **constants,
        **cluster.trial_constants(),
        "seed": options.seed,
        "stage": "teacher",
        "leads": "12",
        "pseudo": PSEUDO["teacher"],
    }
    epochs = int(constants.get("epochs", TrainConfig.epochs))
    searcher = FixedSearcher(configs, metric=METRIC, mode=MODE)
    return TrialSet("teacher", param_space, len(configs), epochs, searcher)


def arm_search(
    space: dict,
    leads: str,
    arm: str,
    options: SearchOptions,
    cluster: Cluster,
    teacher_size: int | None,
) -> TrialSet:
    """One arm (student or baseline) of one lead subset: Optuna (TPE, seeded) + ASHA over `trials`;
    its study is kept under the trial_set's name (AshaAwareOptunaSearch.keep_studies_in).
    `teacher_size`: the embedding size of a given --teacher, the only one students may then use."""
    from ray.tune.schedulers import ASHAScheduler

    from raysearch.searching.ray_compat import AshaAwareOptunaSearch

    constants, dists, asha = stage_space(space, arm, leads)
    if teacher_size is not None:
        dists.pop("embedding_size", None)
        constants["embedding_size"] = teacher_size
    epochs = int(constants.get("epochs", TrainConfig.epochs))
    grace = min(asha["grace_period"], epochs)
    param_space = {
        **constants,
        **cluster.trial_constants(),
        "seed": options.seed,
        "stage": arm,
        "leads": leads,
        "pseudo": PSEUDO[arm],
    }
    for sampled in dists:
        param_space.pop(sampled, None)
    searcher = AshaAwareOptunaSearch(
        epochs,
        study_name=arm_name(arm, leads),
        space=to_optuna(dists),
        metric=METRIC,
        mode=MODE,
        seed=derived_seed(options.seed, int(leads)),
    )
    scheduler = ASHAScheduler(
        metric=METRIC,
        mode=MODE,
        time_attr="training_iteration",
        max_t=epochs,
        grace_period=grace,
        reduction_factor=asha["reduction_factor"],
    )
    mean = expected_epochs(epochs, grace, asha["reduction_factor"])
    return TrialSet(
        arm_name(arm, leads), param_space, options.trials, epochs, searcher, scheduler, mean_epochs=mean
    )


def choose_space(options: SearchOptions, recorded: str | None) -> tuple[Path, str]:
    """The space file and, when raysearch chose it, why (said at start): the one a resumed run
    recorded; else the paper's budget when trials get GPUs and the CPU budget when they do not."""
    if options.space:
        path = space_path(options.space)
        if options.gpus_per_trial <= 0 and path.resolve() == space_path(PAPER_SPACE).resolve():
            return path, (
                f"the paper's budget, meant for GPUs: on CPUs alone it takes days (a paper-scale teacher "
                f"epoch took 2 min on 2 cores, BENCHMARKS.md); --space {CPU_SPACE} fits a CPU machine"
            )
        return path, ""
    if recorded:
        return Path(recorded), "recorded by the run being resumed"
    if options.gpus_per_trial > 0:
        return space_path(PAPER_SPACE), "the paper's budget: trials get GPUs; --space to choose"
    return space_path(CPU_SPACE), (
        f"the CPU budget: trials run on CPUs (--gpus-per-trial 0), where the paper's space "
        f"({PAPER_SPACE}) would take days; --space to choose"
    )
