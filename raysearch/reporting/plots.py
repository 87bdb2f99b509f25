"""The report's figures: report.png (macro-AUC per arm and the gain with both tests' CIs) and
report-mattered.png (validation macro-AUC against alpha and learning rate, per arm).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from raysearch.reporting.figures import Report, Row
from raysearch.searching.summary import scope


def mattered_panels(mattered: dict) -> tuple[list[tuple[str, str, list]], list[str]]:
    """What report-mattered.png draws: (arm, searched parameter, points) for every panel that has
    data, and why each other arm/parameter pair is absent, in words."""
    panels, absent = [], []
    for arm, m in mattered.items():
        points = m["points"]
        if not points:
            absent.append(f"{arm}: no trial ran the full budget")
            continue
        for param in ("alpha", "lr"):
            if all(param in p for p in points):
                panels.append((arm, param, points))
            elif param == "alpha" and not any("sim" in p for p in points):
                absent.append(f"{arm} vs alpha: no teacher, no similarity term")
            else:
                absent.append(f"{arm} vs {param}: not searched")
    return panels, absent


def plot_mattered(mattered: dict, path: Path) -> bool:
    """Validation macro-AUC of every finished trial against alpha (one colour per similarity) and
    against learning rate, a panel per arm and searched parameter, and a note naming what is not
    drawn and why; False (nothing written) when no panel has data."""
    panels, absent = mattered_panels(mattered)
    if not panels:
        return False
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    rows = (len(panels) + 1) // 2
    note = textwrap.fill("Not drawn: " + "; ".join(absent) + ".", 120) if absent else ""
    height = 3.2 * rows + 0.25 * (note.count("\n") + 1 if note else 0)
    fig, axes = plt.subplots(rows, 2, figsize=(10, height), squeeze=False)
    colors = {"l1": "tab:blue", "l2": "tab:orange", "cosine": "tab:green", None: "tab:gray"}
    names = {"alpha": "alpha", "lr": "learning rate"}
    for (arm, param, points), ax in zip(panels, axes.flat, strict=False):
        for sim, color in colors.items():
            mine = [p for p in points if p.get("sim") == sim]
            if mine:
                label = sim or "no similarity (baseline)"
                ax.scatter([p[param] for p in mine], [p["val_macro_auc"] for p in mine], c=color, label=label)
        ax.set_xscale("log")
        lo, hi = ax.get_xlim()
        if hi < 10 * lo:  # within a decade only minor ticks: plain, slanted labels
            ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
            ax.tick_params(axis="x", which="both", labelrotation=30)
        else:
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(names[param])
        ax.set_ylabel("val macro-AUC")
        ax.set_title(f"{arm}: val macro-AUC vs {names[param]}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes.flat[len(panels) :]:
        ax.remove()
    if note:
        fig.text(0.01, 0.005, note, fontsize=8, va="bottom", ha="left")
    fig.tight_layout(rect=(0, 0.03 * (note.count("\n") + 1) / rows if note else 0, 1, 1))
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
    return True


def plot_calibration(report: Report, path: Path) -> bool:
    """Reliability diagrams: per arm (rows) and class (columns), the observed rate of positives
    against the mean probability in each of 10 bins, before (grey) and after (colour) the
    calibration fitted on validation; False (nothing written) when no arm has an operating point."""
    panels = [
        (f"{row['leads']} {arm}", fig["operating"])
        for row in report["rows"]
        for arm, fig in row["arms"].items()
        if "operating" in fig
    ]
    if not panels:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = list(panels[0][1]["per_class"])
    fig, axes = plt.subplots(
        len(panels), len(classes), figsize=(2.3 * len(classes), 2.2 * len(panels)), squeeze=False
    )
    for (name, operating), row_axes in zip(panels, axes, strict=True):
        for k, (cls, ax) in enumerate(zip(classes, row_axes, strict=True)):
            ax.plot([0, 1], [0, 1], color="black", lw=0.6, ls=":")
            for when, style in (("before", {"color": "0.6", "ls": "--"}), ("after", {"color": "tab:blue"})):
                points = operating["reliability"][when][k]
                ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", ms=3, label=when, **style)
            ece = operating["per_class"][cls]
            ax.set_title(
                f"{name} {cls}\nECE {ece['ece_before'][0]:.3f} → {ece['ece_after'][0]:.3f}", fontsize=8
            )
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7)
    fig.supxlabel("mean predicted probability (test, per bin)", fontsize=9)
    fig.supylabel("observed rate of positives", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)
    return True


def plot(report: Report, path: Path) -> None:
    """Left: macro-AUC per lead subset, both arms' ensembles with CIs as error bars, the paper's
    figures as markers. Right: the gain itself, with the paired bootstrap's CI (and Welch's over
    the seeds), beside the paper's claimed gain: the arms' own CIs overlap even where the gain is
    clear. Positions are one slot per lead subset whatever their number; the axes fit our figures,
    and a paper figure outside them is an arrow at the edge with its value. Synthetic data and a
    subset of PTB-XL get no paper markers (nothing comparable)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["rows"]
    gains = [r for r in rows if "gain" in r]
    kind = scope(report["header"])
    comparable = kind == "ptbxl"  # the paper's markers only beside figures from all of PTB-XL
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
            if comparable and row["paper_val"].get(arm):
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
    mark = {"synthetic": " - SYNTHETIC data", "subset": " - a SUBSET of PTB-XL (no paper markers)"}
    ax.set_title(title + mark.get(kind, ""), fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    _plot_gains(gx, gains, comparable)
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)


_STYLES = {
    "teacher": ("black", "12 leads: teacher"),
    "student": ("tab:blue", "pseudo = True (teacher)"),
    "baseline": ("tab:orange", "pseudo = False (baseline)"),
}


def _fit_axis(ax, values: list[float], papers: Sequence[tuple[float, float, str]], label: str) -> None:
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


def _plot_gains(ax, rows: list[Row], comparable: bool) -> None:
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
        if comparable and "student" in paper and "baseline" in paper:
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
