"""Rendering: the summary's and the report's tables, words, csv and figure. No statistics here:
every number is computed by search.py and report.py and only formatted.

    summary_markdown(summary)      summary.md (the search's side-by-side table)
    markdown(report)               report.md (Table 1, per-class AUC, the reading)
    write_csv(report, path)        report.csv, one row per arm
    plot(report, path)             report.png: macro-AUC per arm, and the gain with both tests' CIs
"""

from __future__ import annotations

import csv
from pathlib import Path

from raysearch.vocabulary import CLASSES, PAPER_VAL_AUC, PSEUDO

# ------------------------------------------------------------------------------- the summary


def summary_markdown(summary: dict) -> str:
    """The side-by-side table of summary.json."""
    lines = [
        f"# raysearch summary: {summary['name']}",
        "",
        f"Data: {summary['data']} ({summary['records']} records). Space: {summary['space']}. "
        f"Trials per arm: {summary['trials']}. Test = fold 10, evaluated once for each chosen configuration.",
        "",
        f"Wall time: {summary['wall_seconds'] / 60:.1f} min over {summary['invocations']} invocation(s).",
        "",
        "| leads | arm | best config | val macro-AUC | test macro-AUC (95% CI) | paper (val) | trials "
        "(finished / ASHA-stopped / errored) |",
        "|---|---|---|---|---|---|---|",
    ]
    for leads, arms in summary["leads"].items():
        for arm, r in arms.items():
            cfg = ", ".join(f"{k}={_fmt(v)}" for k, v in r["best_config"].items())
            lo, hi = r["test_macro_auc_ci"]
            paper = PAPER_VAL_AUC.get(leads, {}).get(arm)
            lines.append(
                f"| {leads} | {arm} ({'pseudo = True' if arm == 'student' else 'pseudo = False'}) | {cfg} | "
                f"{r['val_macro_auc']:.4f} | {r['test_macro_auc']:.4f} ({lo:.4f}-{hi:.4f}) | "
                f"{paper if paper else '-'} | {r['trials']} ({r['finished']} / {r['stopped_early']} / "
                f"{r['errored']}) |"
            )
    lines += ["", "Teachers (12 leads, best per embedding size, validation):", ""]
    for size, t in summary["teachers"].items():
        if "given" in t:
            lines.append(f"- embedding {size}: given with --teacher {t['given']}")
            continue
        lines.append(
            f"- embedding {size}: val macro-AUC {t['val_macro_auc']:.4f} (lr {_fmt(t['config'].get('lr'))}, "
            f"{t.get('trials', '?')} trial(s))"
        )
    lines += [
        "",
        "Single-seed figures: a difference between the arms smaller than their CIs is no evidence of a gain;",
        "`python -m raysearch report RUN_DIR --seeds 5` retrains the chosen configurations with new seeds",
        "and tests the gain with a paired bootstrap.",
    ]
    return "\n".join(lines) + "\n"


def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


# ---------------------------------------------------------------------------------- the report


def _pm(fig: dict) -> str:
    return f"{fig['mean']:.4f}" + (f" ± {fig['std']:.4f}" if fig["std"] is not None else "")


def _ens(fig: dict) -> str:
    lo, hi = fig["ensemble_ci"]
    return f"{fig['ensemble']:.4f} ({lo:.4f}–{hi:.4f})"


def markdown(report: dict) -> str:
    """report.md: header (what was run), the macro-AUC table, the per-class table, the reading."""
    h = report["header"]
    k = h["seeds"]
    kind = (
        f"{k} seeds per configuration"
        if k > 1
        else "single-seed (the search's own runs; seed variance unmeasured)"
    )
    lines = [
        f"# raysearch report: {h['run_dir']}",
        "",
        f"- **Figures:** {kind}"
        f", test = fold 10, validation = fold 9; configurations chosen by the search on validation "
        f"and frozen (report/configs.json) before the test fold was read.",
        f"- **Data:** {h['data']} ({h['records']} records). **Search:** space {h['space']}, "
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
        paper = row["paper_val"]
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
            f"{g['gain']:+.4f} ({g['ci'][0]:+.4f} to {g['ci'][1]:+.4f}) | {_p(g['p_value'], g['n_boot'])} | "
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
    lines += ["", "## Reading", ""] + [f"- {s}" for s in reading(report)] + [""]
    return "\n".join(lines)


def reading(report: dict) -> list[str]:
    """What the figures do and do not show, row by row, in words."""
    out = []
    k = report["header"]["seeds"]
    for row in report["rows"]:
        if row["leads"] == "12":
            continue
        g = row["gain"]
        lo, hi = g["ci"]
        p_text = _p_text(g["p_value"], g["n_boot"])
        verdict = (
            "the CI excludes 0"
            + (": the teacher helped on these test records" if lo > 0 else ": the teacher hurt")
            if _excludes_zero(g["ci"])
            else "the CI includes 0: no evidence of a gain either way"
        )
        seeds = ""
        if "seed_welch" in g:
            w = g["seed_welch"]
            st, bs = row["arms"]["student"]["test"]["std"], row["arms"]["baseline"]["test"]["std"]
            seed_verdict = (
                "larger than retraining noise"
                + (", in the teacher's favour" if w["ci"][0] > 0 else ", in the baseline's favour")
                if _excludes_zero(w["ci"])
                else "retraining noise could explain the difference"
            )
            seeds = (
                f" Across seeds the means differ by {w['diff']:+.4f} (Welch 95% CI {w['ci'][0]:+.4f} to "
                f"{w['ci'][1]:+.4f}, p {_p_text(w['p_value'], 1000)}; seed std {st:.4f} with the teacher, "
                f"{bs:.4f} without): {seed_verdict}."
            )
            passed = _excludes_zero(g["ci"]) + _excludes_zero(w["ci"])
            seeds += (
                " Neither test excludes 0.",
                " Only one of the two tests excludes 0.",
                " Both tests exclude 0.",
            )[passed]
        out.append(
            f"{row['leads']} leads: gain {g['gain']:+.4f} (95% CI {lo:+.4f} to {hi:+.4f}, p {p_text}); "
            f"{verdict}.{seeds}"
        )
    for leads in report["incomplete"]:
        out.append(f"{leads} leads: left out, the search ran only one of the two arms (--no-baseline).")
    out.append(
        "The paired bootstrap resamples test records only; "
        + (
            "with one seed it says nothing of how much a retraining would move the figures."
            if k == 1
            else f"the spread between the {k} seeds is the ± column, and the ensembles average it out. "
            "Welch's test over the seeds measures the other noise, retraining, on these same test "
            "records; a gain that is real passes both."
        )
    )
    out.append(
        "The paper's figures are validation figures of single runs on the fold that also chose "
        "the models; ours are test figures of configurations frozen before the test fold was read."
    )
    return out


def write_csv(report: dict, path: Path) -> None:
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
    ] + [f"test_auc_{c}" for c in CLASSES]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for row in report["rows"]:
            g = row.get("gain")
            sw = (g or {}).get("seed_welch")
            for arm, fig in row["arms"].items():
                t, v = fig["test"], fig["val"]
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
                        "paper_val": row["paper_val"].get(arm),
                        **{f"test_auc_{c}": t["ensemble_per_class"][c] for c in CLASSES},
                    }
                )


def plot(report: dict, path: Path) -> None:
    """Left: macro-AUC per lead subset, both arms' ensembles with CIs as error bars, the paper's
    figures as markers. Right: the gain itself, with the paired bootstrap's CI (and Welch's over
    the seeds), beside the paper's claimed gain: the arms' own CIs overlap even where the gain is
    clear. Positions are one slot per lead subset whatever their number; the axes fit our figures,
    and a paper figure outside them is an arrow at the edge with its value. Synthetic data gets
    no paper markers (nothing to compare)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["rows"]
    gains = [r for r in rows if "gain" in r]
    synthetic = report["header"].get("synthetic", False)
    fig, (ax, gx) = plt.subplots(
        1, 2, figsize=(4 + 1.6 * len(rows) + 1.4 * max(len(gains), 1), 5.6),
        gridspec_kw={"width_ratios": [max(len(rows), 1) + 1, max(len(gains), 1) + 1]},
    )  # fmt: skip
    offsets = {"teacher": 0.0, "student": -0.15, "baseline": 0.15}
    drawn, values, papers = set(), [], []
    for x, row in enumerate(rows):
        for arm, fig_ in row["arms"].items():
            color, label = _STYLES[arm]
            t, px = fig_["test"], x + offsets[arm]
            _point_ci(ax, px, t["ensemble"], t["ensemble_ci"], "o", color, None if arm in drawn else label)
            drawn.add(arm)
            values += [t["ensemble"], *t["ensemble_ci"], *t["per_seed"]]
            if len(t["per_seed"]) > 1:
                ax.plot([px] * len(t["per_seed"]), t["per_seed"], ".", color=color, alpha=0.4)
            if not synthetic and row["paper_val"].get(arm):
                papers.append((px, row["paper_val"][arm], color))
    _fit_axis(ax, values, papers, "paper (val)")
    ax.set_xticks(range(len(rows)), [r["leads"] for r in rows])
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_xlabel("leads")
    ax.set_ylabel("test macro-AUC (ensemble, 95% CI)")
    k = report["header"]["seeds"]
    title = (
        f"test macro-AUC, {k} seeds per arm (dots: single seeds)" if k > 1 else "test macro-AUC, single seed"
    )
    ax.set_title(title + (" - SYNTHETIC data" if synthetic else ""), fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    _plot_gains(gx, gains, synthetic)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


_STYLES = {
    "teacher": ("black", "12 leads: teacher"),
    "student": ("tab:blue", "pseudo = True (teacher)"),
    "baseline": ("tab:orange", "pseudo = False (baseline)"),
}


def _fit_axis(ax, values: list[float], papers: list[tuple[float, float, str]], label: str) -> None:
    """y-limits from our own figures; the paper's markers inside them as crosses, outside as an
    arrow at the edge with the value written beside (so they never stretch the axis)."""
    finite = [v for v in values if v == v]  # NaN-free
    if finite:
        lo, hi = min(finite), max(finite)
        pad = 0.1 * (hi - lo) or 0.005
        ax.set_ylim(lo - pad, hi + pad)
    bottom, top = ax.get_ylim()
    for i, (x, value, color) in enumerate(papers):
        legend = label if i == 0 else None
        if bottom <= value <= top:
            ax.plot(x, value, "x", color=color, markersize=9, label=legend)
            continue
        edge, marker, va = (top, "^", "top") if value > top else (bottom, "v", "bottom")
        ax.plot(x, edge, marker, color=color, markersize=8, label=legend, clip_on=False)
        ax.annotate(f"{value:.3f}", (x, edge), xytext=(6, 0), textcoords="offset points", fontsize=8, va=va)


def _point_ci(ax, x: float, value: float, ci: list[float], fmt: str, color: str, label) -> None:
    """A point with its CI as an asymmetric error bar (label None or False: not in the legend)."""
    ax.errorbar(
        x,
        value,
        yerr=[[value - ci[0]], [ci[1] - value]],
        fmt=fmt,
        color=color,
        capsize=4,
        label=label or None,
    )


def _plot_gains(ax, rows: list[dict], synthetic: bool) -> None:
    """The gain pseudo = True - False per lead subset, both tests' CIs, the paper's gain, zero."""
    if not rows:  # e.g. a search run with --no-baseline
        ax.text(0.5, 0.5, "no lead subset with both arms", ha="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    values, papers = [0.0], []
    for x, row in enumerate(rows):
        g, first = row["gain"], x == 0
        _point_ci(
            ax, x - 0.12, g["gain"], g["ci"], "o", "tab:blue", first and "ensembles, paired bootstrap 95% CI"
        )
        values += [g["gain"], *g["ci"]]
        w = g.get("seed_welch")
        if w:
            _point_ci(
                ax, x + 0.12, w["diff"], w["ci"], "s", "tab:green", first and "seed means, Welch 95% CI"
            )
            values += [w["diff"], *w["ci"]]
        paper = row["paper_val"]
        if not synthetic and "student" in paper and "baseline" in paper:
            papers.append((x, paper["student"] - paper["baseline"], "black"))
    _fit_axis(ax, values, papers, "paper (val, single runs)")
    ax.axhline(0, color="grey", linewidth=1)
    ax.set_xticks(range(len(rows)), [r["leads"] for r in rows])
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_xlabel("leads")
    ax.set_ylabel("gain in test macro-AUC")
    ax.set_title("gain pseudo = True − False", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=1)


def _excludes_zero(ci: list[float]) -> bool:
    return ci[0] > 0 or ci[1] < 0


def _welch(w: dict | None) -> str:
    if w is None:
        return "–"
    return f"{w['diff']:+.4f} ({w['ci'][0]:+.4f} to {w['ci'][1]:+.4f}), {_p(w['p_value'], 1000)}"


def _p_text(value: float, n: int) -> str:
    """'= 0.020' or '< 0.001', to follow a 'p'."""
    text = _p(value, n)
    return text if text.startswith("<") else f"= {text}"


def _p(value: float, n_boot: int) -> str:
    """A p-value, never printed as 0: below 1/n_boot (a bootstrap's resolution; 1000 for Welch's,
    the three decimals printed) it is only known to be small."""
    return f"< {1 / n_boot:.3g}" if value < 1 / n_boot else f"{value:.3f}"


def _invocations(n: int | None) -> str:
    return "its last invocation" if n is None else f"{n} invocation{'s' if n != 1 else ''} in all"


def _minutes(seconds) -> str:
    return "?" if seconds is None else f"{seconds / 60:.1f} min"
