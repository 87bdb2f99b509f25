"""Finalists: an arm's top configurations retrained with more seeds, and the choice by seed means.

One training run's validation macro-AUC ranks configurations only as finely as retraining noise
allows, and the best of many noisy runs is flattered by its luck (the winner's curse). So, once
an arm's trials have ended, its top K configurations (by the one run each had) are retrained with
S further seeds at the full budget, as another arm of the same Tune experiment
(`ARM-finalists`: a FinalistSearcher gated on the arm, no ASHA), and the arm's choice is the
finalist with the best mean over its runs (its first run included).

    finalists = finalist_trials(student_4, k=2, seeds=[1, 2, 3])   # a TrialSet
    table = finalist_table(arm_results, finalist_results, epochs, search_seed)   # summary.json's

The seeds are the report's (`derived_seed(search seed, 1..S)`), so `report --seeds` reuses the
chosen finalist's runs instead of training them again.
"""

from __future__ import annotations

import math
import statistics

from raysearch.searching.experiment import TrialSet, epochs_run, sort_trials
from raysearch.searching.searchers import FixedSearcher
from raysearch.training.config import METRIC, MODE, derived_seed

SUFFIX = "-finalists"


def finalists_arm(arm: str) -> str:
    """The name of an arm's finalist trials (their folders: RUN_DIR/trials/ARM-finalists-ID)."""
    return f"{arm}{SUFFIX}"


def finalist_seeds(search_seed: int, count: int) -> list[int]:
    """The seeds configurations are retrained with, by finalists and by the report (which calls
    this too): the same seeds, so the report reuses the finalists' runs."""
    return [derived_seed(search_seed, 1 + i) for i in range(count)]


class FinalistSearcher(FixedSearcher):
    """Suggests, once its gate arm has ended (CombinedSearcher calls `gate_ended`), the gate's top
    `k` fully trained configurations, each with every seed of `seeds`."""

    def __init__(self, k: int, seeds: list[int], epochs: int):
        super().__init__([], metric=METRIC, mode=MODE)
        self.k, self.seeds, self.epochs = int(k), [int(s) for s in seeds], int(epochs)

    def gate_ended(self, trials: list) -> None:
        """Pick the finalists among the gate arm's ended Tune trials: those that ran every epoch
        (ASHA's early stops have truncated scores), best validation metric first."""
        full = [
            t
            for t in trials
            if t.status == "TERMINATED" and t.last_result and epochs_run(t.last_result) == self.epochs
        ]
        top = sorted(full, key=lambda t: t.last_result[METRIC], reverse=True)[: self.k]
        self.configs = [
            {**{k: v for k, v in t.config.items() if k != "arm"}, "seed": seed, "finalist_of": t.trial_id}
            for t in top
            for seed in self.seeds
        ]

    def planned(self, finished: int) -> int:
        """How many finalist trials an arm with `finished` fully trained trials gets."""
        return min(self.k, finished) * len(self.seeds)


def finalist_trials(arm: TrialSet, k: int, seeds: list[int]) -> TrialSet:
    """The finalist trials of `arm` (k configurations x len(seeds)), as a TrialSet that waits for it."""
    searcher = FinalistSearcher(k, seeds, arm.epochs)

    def expected(results: list) -> int:  # fewer when fewer than k of the arm's trials ran every epoch
        mine = [r for r in results if r.config.get("arm") == arm.name]
        return searcher.planned(len(sort_trials(mine, arm.epochs)["finished"]))

    return TrialSet(finalists_arm(arm.name), {}, k * len(seeds), arm.epochs, searcher, expected=expected)


def finalist_table(arm_results: list, finalist_results: list, epochs: int, search_seed: int) -> list[dict]:
    """Each finalist of an arm, best mean first: its first run (the search's trial) and its
    finalist runs that ran every epoch, with their validation metric, mean and std."""
    first = {r.metrics["trial_id"]: r for r in arm_results if r.metrics}
    by_first: dict[str, list] = {}
    for r in finalist_results:
        by_first.setdefault(r.config["finalist_of"], []).append(r)
    table = []
    for trial_id, runs in by_first.items():
        origin = first[trial_id]
        done = sorted(sort_trials(runs, epochs)["finished"], key=lambda r: int(r.config["seed"]))
        scores = [float(origin.metrics[METRIC])] + [float(r.metrics[METRIC]) for r in done]
        table.append(
            {
                "trial": trial_id,
                "config": origin.config,
                "seeds": [search_seed] + [int(r.config["seed"]) for r in done],
                "val_macro_auc": scores,
                "mean": statistics.fmean(scores),
                "std": statistics.stdev(scores) if len(scores) > 1 else None,
                "failed": len(runs) - len(done),
                "results": [origin, *done],
            }
        )
    table.sort(key=lambda f: f["mean"], reverse=MODE == "max")
    return table


def noise_floor(table: list[dict]) -> float | None:
    """Retraining noise: the std of validation macro-AUC over seeds, pooled over the finalists
    (the root mean of their variances, weighted by degrees of freedom); None without repeats."""
    pairs = [(len(f["val_macro_auc"]) - 1, f["std"]) for f in table if f["std"] is not None]
    dof = sum(n for n, _ in pairs)
    if not dof:
        return None
    return math.sqrt(sum(n * s * s for n, s in pairs) / dof)


def lead_beyond_noise(table: list[dict], floor: float | None) -> bool | None:
    """Whether the chosen finalist's lead over the runner-up exceeds twice the standard error of
    the difference of their means (about a 95% bound); None with one finalist or no floor."""
    if len(table) < 2 or floor is None:
        return None
    a, b = table[0], table[1]
    se = floor * math.sqrt(1 / len(a["val_macro_auc"]) + 1 / len(b["val_macro_auc"]))
    return abs(a["mean"] - b["mean"]) > 2 * se
