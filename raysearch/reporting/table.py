"""Table 1's numbers: per lead subset and arm, test macro-AUC mean ± std over seeds and the
macro-AUC of the seed-ensembled predictions with its bootstrap CI; the gain pseudo = True - False
with a paired bootstrap and, over seeds, Welch's test; validation beside test; and each arm's
operating point (calibration and thresholds from validation, their test figures, reporting/clinical.py);
and how the search had measured each chosen configuration (the winner's curse).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from raysearch.data.schema import CLASSES
from raysearch.errors import UserError, first_line
from raysearch.reporting.clinical import operating_figures, paired_f1
from raysearch.reporting.figures import ArmFigures, Report, Row, SplitFigures
from raysearch.reporting.freeze import TEACHER
from raysearch.reporting.statistics import paired_bootstrap, seed_welch
from raysearch.searching.summary import PAPER_VAL_AUC
from raysearch.training.config import ARMS
from raysearch.training.metrics import bootstrap_ci, macro_auc, per_class_auc
from raysearch.training.operating import fit_operating_point

TABLE_ROWS = ("12", "6", "4", "3", "2")  # Table 1's rows, the teacher first


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


def arm_figures(runs: list[Path], loaded: dict, n_boot: int) -> ArmFigures:
    """Per split (`loaded`: split -> _load's tuple): each seed's macro-AUC, their mean and std,
    and the seed-ensembled predictions' macro-AUC (with a bootstrap CI on test) and per-class AUC."""
    out: ArmFigures = {"runs": [str(r) for r in runs], "seeds": len(runs)}
    for split, (_, y, scores) in loaded.items():
        per_seed = [macro_auc(y, s) for s in scores]
        ensemble = np.mean(scores, axis=0)
        fig: SplitFigures = {
            "per_seed": per_seed,
            "mean": float(np.mean(per_seed)),
            "std": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else None,
            "ensemble": macro_auc(y, ensemble),
            "ensemble_per_class": dict(zip(CLASSES, per_class_auc(y, ensemble).tolist(), strict=True)),
        }
        if split == "test":
            fig["ensemble_ci"] = list(bootstrap_ci(y, ensemble, n_boot=n_boot, seed=0))
        out[split] = fig  # type: ignore[literal-required]  # "val" or "test"
    return out


def selection_figures(summary: dict, leads: str, arm: str, chosen_by: str = "finalists") -> dict:
    """How the search measured the reported configuration before the report retrained it: the
    validation macro-AUC of its first run (the one it was ranked by), of the search's one-run
    winner, and its finalists' mean over their runs (None without finalists). `chosen_by`
    "first-run": the reported configuration is the one-run winner (itself a finalist)."""
    r = summary["leads"][leads][arm]
    winner = r.get("search_winner", {}).get("val_macro_auc", r["val_macro_auc"])
    f = r.get("finalists")
    if not f or not f["table"]:
        return {"first_val": winner, "search_winner_val": winner, "finalist_mean": None, "finalist_runs": 0}
    chosen = f["table"][0]
    if chosen_by == "first-run":  # the finalist whose first run won the search
        chosen = max(f["table"], key=lambda row: row["val_macro_auc"][0])
    return {
        "first_val": chosen["val_macro_auc"][0],
        "search_winner_val": winner,
        "finalist_mean": chosen["mean"],
        "finalist_runs": len(chosen["val_macro_auc"]),
    }


def build_report(
    runs: dict[str, list[Path]], frozen: dict, n_boot: int, rule: str = "f1", fitted=None
) -> Report:
    """The table's numbers: one row per lead subset (12 = the teacher). Each arm's operating point
    is fitted from its validation predictions first and handed to `fitted` (which writes it)
    before any test prediction is loaded."""
    present: list[tuple[str, list[str]]] = []
    incomplete: list[str] = []
    for leads in TABLE_ROWS:
        arms = [TEACHER] if leads == "12" else [f"{a}-{leads}" for a in ARMS]
        if all(a in runs for a in arms):
            present.append((leads, arms))
        elif any(a in runs for a in arms):  # e.g. a search run with --no-baseline: no comparison
            incomplete.append(leads)
    val = {a: _load(runs[a], "val") for _, arms in present for a in arms}
    points = {
        a: fit_operating_point(y, np.mean(scores, axis=0), rule, list(CLASSES))
        for a, (_, y, scores) in val.items()
    }
    if fitted is not None:
        fitted(points)
    rows: list[Row] = []
    for leads, arms in present:
        loaded = {a: {"val": val[a], "test": _load(runs[a], "test")} for a in arms}
        row: Row = {"leads": leads, "paper_val": PAPER_VAL_AUC.get(leads, {}), "arms": {}}
        for a in arms:
            figures = arm_figures(runs[a], loaded[a], n_boot)
            figures["config"] = frozen["configs"][a]
            if leads != "12" and "summary" in frozen:
                chosen_by = frozen.get("chosen_by", "finalists")
                figures["selection"] = selection_figures(frozen["summary"], leads, a.split("-")[0], chosen_by)
            _, y_test, scores = loaded[a]["test"]
            figures["operating"] = operating_figures(points[a], y_test, np.mean(scores, axis=0), n_boot)
            row["arms"][a.split("-")[0]] = figures
        if leads != "12":
            ids, y, s = loaded[f"student-{leads}"]["test"]
            other, _, b = loaded[f"baseline-{leads}"]["test"]
            if not np.array_equal(ids, other):  # the paired bootstrap pairs records by position
                raise UserError(f"{leads} leads: the two arms scored different test records")
            gain = paired_bootstrap(y, np.mean(s, axis=0), np.mean(b, axis=0), n_boot=n_boot, seed=0)
            row["gain"] = gain  # type: ignore[typeddict-item]  # paired_bootstrap's keys are Gain's
            per_seed = [row["arms"][a]["test"]["per_seed"] for a in ARMS]
            row["gain"]["of_seed_means"] = float(np.mean(per_seed[0]) - np.mean(per_seed[1]))
            if min(map(len, per_seed)) > 1:  # training noise: the seeds' spread, Welch's t-test
                welch = seed_welch(per_seed[0], per_seed[1])
                row["gain"]["seed_welch"] = welch  # type: ignore[typeddict-item]  # SeedWelch's keys
            called = [
                points[f"{a}-{leads}"].labels(np.mean(x, axis=0))
                for a, x in (("student", s), ("baseline", b))
            ]
            row["f1_gain"] = paired_f1(y, called[0], called[1], n_boot)  # type: ignore[typeddict-item]
        rows.append(row)
    return {"rows": rows, "incomplete": incomplete, "classes": list(CLASSES)}
