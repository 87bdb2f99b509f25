"""What mattered in each arm's search: Optuna's hyperparameter importances over the arm's study.

    mattered = what_mattered("runs/x/optuna.db")
    mattered["student-4"]["importance"]["fanova"]     # {"lr": 0.61, "alpha": 0.22, ...} or None

Read from the studies the search keeps in RUN_DIR/optuna.db (one per arm, see searching/ray_compat.py). Only
trials that ran the full budget (COMPLETE; ASHA's early stops are PRUNED) are ranked, by two of
Optuna's evaluators side by side: fANOVA (a random forest's functional ANOVA) and PED-ANOVA
(which parameters separate the top 10% of trials from the rest). Below MIN_TRIALS finished trials
the importances are None: a ranking of a handful of points is noise. Beside them: the best
validation macro-AUC per similarity, and every finished trial's parameters and score (the plots).
A search with finalists measured its retraining noise (searching/finalists.py): what is smaller
than it is marked, and a parameter is only said to matter when the spread it explains exceeds it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from raysearch.errors import UserError, first_line

MIN_TRIALS = 12  # finished trials below which parameters are not ranked


def importances(study, evaluator) -> dict[str, float]:
    """Importance of each parameter (summing to 1) over the study's COMPLETE trials."""
    import optuna

    return {
        k: float(v) for k, v in optuna.importance.get_param_importances(study, evaluator=evaluator).items()
    }


def arm_report(study, seed: int = 0, floor: float | None = None) -> dict:
    """One study's counts, importances (None below MIN_TRIALS), best per similarity and points.
    With `floor` (the arm's retraining std of validation macro-AUC, from its finalists) each
    importance is also an AUC spread, the std of the score it explains (sqrt(importance x the
    variance of the finished trials' scores)), and it and each best-per-similarity difference
    smaller than the floor is marked within retraining noise."""
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    counts = {
        s.name.lower(): sum(t.state == s for t in trials)
        for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    }
    names = {k for t in done for k in t.params}
    varied = [k for k in sorted(names) if len({str(t.params.get(k)) for t in done}) > 1]
    ranked = None
    if len(done) >= MIN_TRIALS and varied:
        ranked = {
            "fanova": importances(study, FanovaImportanceEvaluator(seed=seed)),
            "ped_anova": importances(study, PedAnovaImportanceEvaluator()),
        }
    best_per_sim: dict[str, float] = {}
    for t in done:
        sim = t.params.get("sim")
        if sim is not None and t.value > best_per_sim.get(sim, float("-inf")):
            best_per_sim[sim] = float(t.value)
    out = {
        "trials": counts,
        "finished": len(done),
        "min_trials": MIN_TRIALS,
        "importance": ranked,
        "best_val_macro_auc_per_sim": best_per_sim,
        "points": [{**t.params, "val_macro_auc": float(t.value)} for t in done],
        "noise_floor": floor,
    }
    if floor is not None:
        out.update(within_noise(ranked, [float(t.value) for t in done], best_per_sim, floor))
    return out


def within_noise(ranked: dict | None, scores: list[float], best_per_sim: dict, floor: float) -> dict:
    """What is smaller than the noise floor: each importance as the AUC std it explains, and each
    similarity's best against the best of all."""
    import statistics

    variance = statistics.pvariance(scores) if len(scores) > 1 else 0.0
    spread = (
        {e: {k: math.sqrt(v * variance) for k, v in imp.items()} for e, imp in ranked.items()}
        if ranked
        else None
    )
    top = max(best_per_sim.values(), default=0.0)
    return {
        "explained_std": spread,
        "importance_within_noise": (
            {e: {k: v < floor for k, v in by.items()} for e, by in spread.items()} if spread else None
        ),
        "sim_within_noise": {sim: top - v < floor for sim, v in best_per_sim.items()},
    }


def what_mattered(
    storage_file: str | os.PathLike, seed: int = 0, floors: dict[str, float | None] | None = None
) -> dict[str, dict]:
    """Every arm study's arm_report, by study name ({} when the run kept no studies); `floors`:
    each arm's noise floor, by the same name (from its finalists; absent without them)."""
    import optuna

    path = Path(storage_file)
    if not path.is_file():
        return {}
    storage = f"sqlite:///{path}"
    try:
        return {
            s.study_name: arm_report(
                optuna.load_study(study_name=s.study_name, storage=storage),
                seed,
                (floors or {}).get(s.study_name),
            )
            for s in optuna.get_all_study_summaries(storage)
        }
    except Exception as e:  # SQLAlchemy's and Optuna's errors for a file that is not their database
        reason = first_line(e)
        raise UserError(f"{path}: not a readable Optuna study database ({reason})") from None
