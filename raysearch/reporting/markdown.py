"""report.md: the header (what was run), the macro-AUC table, the per-class table, what mattered
and the reading. Formatting only: every number is computed elsewhere.
"""

from __future__ import annotations

from raysearch.data.schema import CLASSES
from raysearch.reporting.figures import Report, SeedWelch, SplitFigures
from raysearch.reporting.reading import format_p, reading
from raysearch.searching.summary import data_line, data_note, scope, title_mark


def _pm(fig: SplitFigures) -> str:
    return f"{fig['mean']:.4f}" + (f" ± {fig['std']:.4f}" if fig["std"] is not None else "")


def _ens(fig: SplitFigures) -> str:
    lo, hi = fig["ensemble_ci"]
    return f"{fig['ensemble']:.4f} ({lo:.4f}–{hi:.4f})"


def markdown(report: Report) -> str:
    """report.md: header (what was run), the macro-AUC table, the per-class table, the reading."""
    h = report["header"]
    k = h["seeds"]
    kind = (
        f"{k} seeds per configuration"
        if k > 1
        else "single-seed (the search's own runs; seed variance unmeasured)"
    )
    comparable = scope(h) == "ptbxl"  # the paper's figures beside ours only on all of PTB-XL
    lines = [
        f"# raysearch report: {h['run_dir']}{title_mark(h)}",
        "",
        *data_note(h),
        f"- **Figures:** {kind}"
        f", test = fold 10, validation = fold 9; configurations chosen by the search on validation "
        f"and frozen (report/configs.json) before the test fold was read.",
        f"- **Data:** {data_line(h)}. **Search:** space {h['space']}, "
        f"{h['trials']} trials per arm, seed {h['search_seed']}.",
        f"- **Budget:** {h['budget']}.",
        f"- **Device:** {h['device']}. **Wall time:** search {h['wall']['search']} "
        f"({_invocations(h['wall'].get('search_invocations'))}), this report invocation "
        f"{h['wall']['report']}; the table's runs trained for "
        f"{h['wall']['runs_training']} of trial time (sum of their epochs; trials ran in parallel).",
        "",
        "## Macro-AUC (test; validation beside it)",
        "",
        "mean ± std over seeds; ensemble = macro-AUC of the seeds' averaged predictions with its 95% "
        "bootstrap CI over test records; gain = ensemble(pseudo = True) − ensemble(pseudo = False), 95% "
        "CI and p from a paired bootstrap over the same test records; seeds: the difference of the two "
        "arms' seed means, 95% CI and p from Welch's t-test over the seeds (training noise; – with one "
        "seed). The 12-lead row is the teacher.",
        "",
        "| leads | pseudo = True: test | ensemble (95% CI) | val | pseudo = False: test | "
        "ensemble (95% CI) | val | gain (95% CI) | p | seeds: gain of means (95% CI), p "
        "| paper val True / False |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        paper = row["paper_val"] if comparable else {}
        if row["leads"] == "12":
            t = row["arms"]["teacher"]
            lines.append(
                f"| 12 (teacher) | {_pm(t['test'])} | {_ens(t['test'])} | {_pm(t['val'])} | "
                f"– | – | – | – | – | – | {paper.get('teacher', '–')} |"
            )
            continue
        s, b, g = row["arms"]["student"], row["arms"]["baseline"], row["gain"]
        lines.append(
            f"| {row['leads']} | {_pm(s['test'])} | {_ens(s['test'])} | {_pm(s['val'])} | {_pm(b['test'])} | "
            f"{_ens(b['test'])} | {_pm(b['val'])} | "
            f"{g['gain']:+.4f} ({g['ci'][0]:+.4f} to {g['ci'][1]:+.4f}) | "
            f"{format_p(g['p_value'], g['n_boot'])} | "
            f"{_welch(g.get('seed_welch'))} | {paper.get('student', '–')} / {paper.get('baseline', '–')} |"
        )
    lines += [
        "",
        "## Per-class AUC (test, seed-ensembled predictions)",
        "",
        "| leads | arm | " + " | ".join(CLASSES) + " |",
        "|---|---|" + "---|" * len(CLASSES),
    ]
    for row in report["rows"]:
        for arm, fig in row["arms"].items():
            label = {"teacher": "teacher", "student": "pseudo = True", "baseline": "pseudo = False"}[arm]
            per = fig["test"]["ensemble_per_class"]
            lines.append(
                f"| {row['leads']} | {label} | " + " | ".join(f"{per[c]:.4f}" for c in CLASSES) + " |"
            )
    lines += selection_markdown(report)
    lines += operating_markdown(report)
    lines += mattered_markdown(report.get("what_mattered") or {})
    if report.get("what_mattered_missing"):
        lines += ["", "## What mattered", "", f"Left out: {report['what_mattered_missing']}."]
    lines += ["", "## Reading", ""] + [f"- {s}" for s in reading(report)] + [""]
    return "\n".join(lines)


def selection_markdown(report: Report) -> list[str]:
    """The winner's curse: each chosen configuration's validation macro-AUC as the search first
    measured it, as its finalists averaged it, as the report's seeds score it, and its test."""
    rows = [
        (row["leads"], arm, fig)
        for row in report["rows"]
        for arm, fig in row["arms"].items()
        if "selection" in fig
    ]
    if not rows:
        return []
    lines = [
        "",
        "## How the search measured its choices (the winner's curse)",
        "",
        "Validation macro-AUC of each chosen configuration: its first run (the one the search ranked it "
        "by; the search's one-run winner when they differ), its finalists' mean (its first run and its "
        "further seeds), and the report's seeds on the same fold; then their test macro-AUC. The "
        "first run minus the report's validation mean is what choosing the best of many noisy runs added "
        "(the same fold, new seeds); validation minus test is the difference between the folds.",
        "",
        "| leads | arm | val: first run | val: finalist mean (runs) | val: report seeds | test: report seeds "
        "| first run − report val | report val − test |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for leads, arm, fig in rows:
        sel = fig["selection"]
        first = f"{sel['first_val']:.4f}"
        if sel["search_winner_val"] != sel["first_val"]:
            first += f" (winner {sel['search_winner_val']:.4f})"
        mean = (
            f"{sel['finalist_mean']:.4f} ({sel['finalist_runs']})"
            if sel["finalist_mean"] is not None
            else "–"
        )
        val, test = fig["val"]["mean"], fig["test"]["mean"]
        label = {"student": "pseudo = True", "baseline": "pseudo = False"}[arm]
        lines.append(
            f"| {leads} | {label} | {first} | {mean} | {_pm(fig['val'])} | {_pm(fig['test'])} | "
            f"{sel['first_val'] - val:+.4f} | {val - test:+.4f} |"
        )
    return lines


def _ci3(v: list[float]) -> str:
    return f"{v[0]:.3f} ({v[1]:.3f}–{v[2]:.3f})"


def operating_markdown(report: Report) -> list[str]:
    """The operating point: calibration and thresholds fitted on validation, test figures with CIs."""
    rows = [r for r in report["rows"] if all("operating" in a for a in r["arms"].values())]
    if not rows:
        return []
    rule = next(iter(rows[0]["arms"].values()))["operating"]["rule"]
    lines = [
        "",
        f"## Operating point (test; calibration and thresholds fitted on validation, rule {rule})",
        "",
        "Each arm's seed-ensembled probabilities calibrated by a temperature per class and called "
        f"positive at a threshold per class ({rule}), both fitted on the validation fold before any test "
        "prediction was read (RUN_DIR/report/operating.json); the figures are on test, with 95% "
        "bootstrap CIs over test records. ECE: expected calibration error over 10 bins.",
        "",
        "| leads | arm | class | threshold | sensitivity | specificity | PPV | NPV | F1 | ECE before → after "
        "| Brier before → after |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        for arm, fig in row["arms"].items():
            label = {"teacher": "teacher", "student": "pseudo = True", "baseline": "pseudo = False"}[arm]
            for name, c in fig["operating"]["per_class"].items():
                lines.append(
                    f"| {row['leads']} | {label} | {name} | {c['threshold']:.3f} | "
                    + " | ".join(_ci3(c[m]) for m in ("sensitivity", "specificity", "ppv", "npv", "f1"))
                    + " | "
                    f"{c['ece_before'][0]:.3f} → {c['ece_after'][0]:.3f} | "
                    f"{c['brier_before'][0]:.3f} → {c['brier_after'][0]:.3f} |"
                )
    lines.append("")
    for row in rows:
        if "f1_gain" in row:
            g = row["f1_gain"]
            lines.append(
                f"- {row['leads']} leads: macro-F1 pseudo = True − False at their operating points "
                f"{g['diff']:+.4f} (95% CI {g['ci'][0]:+.4f} to {g['ci'][1]:+.4f}, "
                f"p {format_p(g['p_value'], g['n_boot'])}; paired bootstrap over test records)."
            )
    lines.append("Reliability diagrams (before and after calibration, per class): report-calibration.png.")
    return lines


def mattered_markdown(mattered: dict) -> list[str]:
    """The "What mattered" section: per arm, importances side by side, best AUC per similarity."""
    if not mattered:
        return []
    lines = [
        "",
        "## What mattered (the search's Optuna studies, RUN_DIR/optuna.db)",
        "",
        "Importance of each searched parameter for validation macro-AUC over the trials that ran the "
        "full budget, by fANOVA and by PED-ANOVA (top 10% of trials against all); each column sums "
        "to 1. One search seed: a ranking, not a measured effect. Plots: report-mattered.png.",
    ]
    for arm, m in mattered.items():
        t = m["trials"]
        lines += [
            "",
            f"**{arm}**: {m['finished']} finished, {t['pruned']} stopped early by ASHA, {t['fail']} failed.",
        ]
        floor = m.get("noise_floor")
        if floor is not None:
            lines.append(
                f"Retraining noise (the std of validation macro-AUC over seeds, from the finalists): "
                f"{floor:.4f}. A parameter matters only where the AUC spread it explains (the std, "
                f"sqrt(importance x the variance of the finished trials' scores)) exceeds it."
            )
        if m["importance"] is None:
            lines.append(f"Too few finished trials to rank parameters ({m['finished']} < {m['min_trials']}).")
        elif floor is not None and m.get("explained_std"):
            lines += [
                "",
                "| parameter | fANOVA (AUC std explained) | PED-ANOVA (AUC std explained) |",
                "|---|---|---|",
            ]
            lines += [
                f"| {k} | {_explained(m, 'fanova', k)} | {_explained(m, 'ped_anova', k)} |"
                for k in m["importance"]["fanova"]
            ]
        else:
            fanova, ped = m["importance"]["fanova"], m["importance"]["ped_anova"]
            lines += ["", "| parameter | fANOVA | PED-ANOVA |", "|---|---|---|"]
            lines += [f"| {k} | {fanova[k]:.2f} | {ped.get(k, 0.0):.2f} |" for k in fanova]
        if m["best_val_macro_auc_per_sim"]:
            best, noise = m["best_val_macro_auc_per_sim"], m.get("sim_within_noise") or {}
            lines.append("")
            lines.append(
                "Best val macro-AUC per similarity: "
                + ", ".join(
                    f"{k} {v:.4f}{_noise_mark(noise.get(k), v == max(best.values()))}"
                    for k, v in best.items()
                )
            )
    return lines


def _explained(m: dict, evaluator: str, param: str) -> str:
    """An importance, the AUC std it explains, and whether that is within retraining noise."""
    importance = m["importance"][evaluator].get(param, 0.0)
    std = m["explained_std"][evaluator].get(param, 0.0)
    within = m["importance_within_noise"][evaluator].get(param, True)
    return f"{importance:.2f} ({std:.4f}{', within retraining noise' if within else ''})"


def _noise_mark(within: bool | None, best: bool) -> str:
    """After a similarity's best: whether it is told apart from the best similarity's."""
    if within is None or best:
        return ""
    return " (within retraining noise of the best)" if within else ""


def _welch(w: SeedWelch | None) -> str:
    if w is None:
        return "–"
    return f"{w['diff']:+.4f} ({w['ci'][0]:+.4f} to {w['ci'][1]:+.4f}), {format_p(w['p_value'], 1000)}"


def _invocations(n: int) -> str:
    return f"{n} invocation{'s' if n != 1 else ''} in all"
