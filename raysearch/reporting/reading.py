"""The report's reading: what each row's figures do and do not show, in words."""

from __future__ import annotations

from raysearch.reporting.figures import Report
from raysearch.searching.summary import scope


def reading(report: Report) -> list[str]:
    """What the figures do and do not show, row by row, in words."""
    if report["header"].get("synthetic"):
        return _synthetic_reading(report)
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
        at_point = ""
        if "f1_gain" in row:
            f = row["f1_gain"]
            at_point = (
                f" At the operating points fitted on validation, macro-F1 differs by {f['diff']:+.4f} "
                f"(95% CI {f['ci'][0]:+.4f} to {f['ci'][1]:+.4f}): "
                + (
                    "the teacher changes what the model calls, not only how it ranks."
                    if _excludes_zero(f["ci"])
                    else "no evidence that the teacher changes what the model calls."
                )
            )
        out.append(
            f"{row['leads']} leads: gain {g['gain']:+.4f} (95% CI {lo:+.4f} to {hi:+.4f}, p {p_text}); "
            f"{verdict}.{seeds}{at_point}"
        )
    out += _selection_reading(report)
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
    if scope(report["header"]) == "subset":
        h = report["header"]
        out.append(
            f"These records are a subset of PTB-XL ({h['records']:,} with a superclass): the verdicts "
            "hold for this subset only, and the paper's figures (from all of PTB-XL) are not compared."
        )
    else:
        out.append(
            "The paper's figures are validation figures of single runs on the fold that also chose "
            "the models; ours are test figures of configurations frozen before the test fold was read."
        )
    return out


def _selection_reading(report: Report) -> list[str]:
    """The winner's curse in words: how far the first validation figures sat above what new seeds
    of the same configurations score on the same fold, and the finalists' means beside them."""
    chosen = [fig for row in report["rows"] for fig in row.get("arms", {}).values() if "selection" in fig]
    if not chosen:
        return []
    if report["header"]["seeds"] < 2:
        return [
            "Each chosen configuration's validation figure here is its search run itself: how much "
            "choosing the best of many noisy runs inflated it is not measured (report --seeds K retrains it)."
        ]
    first = [f["selection"]["first_val"] - f["val"]["mean"] for f in chosen]
    sentence = (
        f"Choosing by one run flattered the choices: their first runs scored {_mean(first):+.4f} on average "
        f"({min(first):+.4f} to {max(first):+.4f}) above the report's new seeds of the same configurations "
        f"on the same validation fold"
    )
    finals = [
        f["selection"]["finalist_mean"] - f["val"]["mean"] for f in chosen if f["selection"]["finalist_mean"]
    ]
    if finals:
        sentence += f"; their finalist means, {_mean(finals):+.4f}"
    drop = _mean([f["val"]["mean"] - f["test"]["mean"] for f in chosen])
    side = "below" if drop >= 0 else "above"
    return [
        sentence + f". Test sat {abs(drop):.4f} {side} validation on average, the difference between the "
        "folds. The first figure a search reports is the one to discount; the report's seeds are not."
    ]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _synthetic_reading(report: Report) -> list[str]:
    """On synthetic data the figures are read as numbers only: no verdict, no paper."""
    out = [
        "These figures come from SYNTHETIC data generated by raysearch: they show that the pipeline "
        "runs and what it writes, not whether the teacher helps on real ECGs, and they are not "
        "compared with the paper. Run the same commands on PTB-XL for figures that mean something."
    ]
    for row in report["rows"]:
        if "gain" in row:
            g = row["gain"]
            w = g.get("seed_welch")
            seeds = (
                f"; the seed means differ by {w['diff']:+.4f} (Welch 95% CI {w['ci'][0]:+.4f} to "
                f"{w['ci'][1]:+.4f})"
                if w
                else ""
            )
            out.append(
                f"{row['leads']} leads: gain {g['gain']:+.4f} (95% CI {g['ci'][0]:+.4f} to "
                f"{g['ci'][1]:+.4f}){seeds}, on synthetic records."
            )
    return out


def _excludes_zero(ci: list[float]) -> bool:
    return ci[0] > 0 or ci[1] < 0


def _p_text(value: float, n: int) -> str:
    """'= 0.020' or '< 0.001', to follow a 'p'."""
    text = format_p(value, n)
    return text if text.startswith("<") else f"= {text}"


def format_p(value: float, n_boot: int) -> str:
    """A p-value, never printed as 0: below 1/n_boot (a bootstrap's resolution; 1000 for Welch's,
    the three decimals printed) it is only known to be small."""
    return f"< {1 / n_boot:.3g}" if value < 1 / n_boot else f"{value:.3f}"
