"""report.csv: one row per arm with every figure of the table, and how the search had measured
its chosen configuration (val_first_run, val_search_winner, val_finalist_mean)."""

from __future__ import annotations

import csv
from pathlib import Path

from raysearch.data.schema import CLASSES
from raysearch.reporting.figures import Report
from raysearch.training.config import PSEUDO


def write_csv(report: Report, path: Path) -> None:
    fields = [
        "leads",
        "arm",
        "pseudo",
        "seeds",
        "test_mean",
        "test_std",
        "test_ensemble",
        "test_ci_lo",
        "test_ci_hi",
        "val_mean",
        "val_std",
        "val_ensemble",
        "gain",
        "gain_ci_lo",
        "gain_ci_hi",
        "p_value",
        "seed_gain",
        "seed_gain_ci_lo",
        "seed_gain_ci_hi",
        "seed_p_value",
        "paper_val",
        "val_first_run",
        "val_search_winner",
        "val_finalist_mean",
        "finalist_runs",
    ] + [f"test_auc_{c}" for c in CLASSES]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for row in report["rows"]:
            g = row.get("gain")
            sw = (g or {}).get("seed_welch")
            for arm, fig in row["arms"].items():
                t, v, sel = fig["test"], fig["val"], fig.get("selection") or {}
                w.writerow(
                    {
                        "leads": row["leads"],
                        "arm": arm,
                        "pseudo": PSEUDO[arm],
                        "seeds": fig["seeds"],
                        "test_mean": t["mean"],
                        "test_std": t["std"],
                        "test_ensemble": t["ensemble"],
                        "test_ci_lo": t["ensemble_ci"][0],
                        "test_ci_hi": t["ensemble_ci"][1],
                        "val_mean": v["mean"],
                        "val_std": v["std"],
                        "val_ensemble": v["ensemble"],
                        "gain": g["gain"] if g else None,
                        "gain_ci_lo": g["ci"][0] if g else None,
                        "gain_ci_hi": g["ci"][1] if g else None,
                        "p_value": g["p_value"] if g else None,
                        "seed_gain": sw["diff"] if sw else None,
                        "seed_gain_ci_lo": sw["ci"][0] if sw else None,
                        "seed_gain_ci_hi": sw["ci"][1] if sw else None,
                        "seed_p_value": sw["p_value"] if sw else None,
                        "paper_val": None if report["header"].get("synthetic") else row["paper_val"].get(arm),
                        "val_first_run": sel.get("first_val"),
                        "val_search_winner": sel.get("search_winner_val"),
                        "val_finalist_mean": sel.get("finalist_mean"),
                        "finalist_runs": sel.get("finalist_runs"),
                        **{f"test_auc_{c}": t["ensemble_per_class"][c] for c in CLASSES},
                    }
                )
