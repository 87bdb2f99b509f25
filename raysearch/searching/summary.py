"""An arm's summary once its trials have ended (its chosen configuration on validation, by its
finalists' seed means or by its best fully trained trial, evaluated on the test fold once), and
summary.md, the search's side-by-side table with each arm's finalists.
"""

from __future__ import annotations

import statistics

from raysearch.data.schema import PTBXL_RECORDS
from raysearch.errors import UserError
from raysearch.searching.budget import plain_config
from raysearch.searching.experiment import TrialSet, best_trial, failed_once, sort_trials
from raysearch.searching.finalists import finalist_table, lead_beyond_noise, noise_floor
from raysearch.searching.progress import epoch_seconds
from raysearch.searching.rundir import RunDir
from raysearch.searching.trainable import trained_network
from raysearch.training.checkpoint import save_checkpoint
from raysearch.training.config import METRIC
from raysearch.training.evaluation import evaluate_frozen

SEARCHED = ("alpha", "sim", "embedding_size", "lr", "weight_decay")  # what a summary shows per arm

# The paper's Table 1: validation macro-AUC of single runs.
PAPER_VAL_AUC = {
    "12": {"teacher": 0.9320},
    "6": {"student": 0.9017, "baseline": 0.9007},
    "4": {"student": 0.9227, "baseline": 0.9218},
    "3": {"student": 0.9213, "baseline": 0.9199},
    "2": {"student": 0.9017, "baseline": 0.9002},
}


def arm_summary(
    trial_set: TrialSet,
    results: list,
    data,
    run_dir: RunDir,
    device: str,
    rule: str = "f1",
    finalists: list | None = None,
    search_seed: int = 0,
) -> dict:
    """Choose the arm's configuration on validation: with `finalists` (the results of its finalist
    trials; None: finalists off) the finalist with the best mean over its seeds, else the best
    fully trained trial. Evaluate the chosen configuration's first run on the test fold once (its
    operating point fitted by `rule` on validation first)."""
    trials = sort_trials(results, trial_set.epochs)
    try:
        winner = best_trial(results, trial_set.epochs, trial_set.name)  # the search's one-run winner
    except UserError as e:
        raise UserError(f"{e}; see {run_dir.location}/{trial_set.name}") from None
    table = finalist_table(results, finalists, trial_set.epochs, search_seed) if finalists is not None else []
    top = table[0]["results"][0] if table else winner
    out = run_dir.path / "best" / trial_set.name
    with data.unsealed():  # the configuration is chosen: its test figures may be read, once
        metrics = evaluate_frozen(trained_network(top), data, out, device, rule=rule)
    for r in table[0]["results"][1:] if table else []:  # its other seeds: the report reuses them
        save_checkpoint(out / "seeds" / f"seed{int(r.config['seed'])}", trained_network(r))
    return {
        "trials": len(results),
        "finished": len(trials["finished"]),
        "stopped_early": len(trials["stopped_early"]),
        "errored": len(trials["errored"]),
        "restarted": sum(failed_once(r) and r.error is None for r in results),
        "best_config": plain_config(top.config, SEARCHED),
        "val_macro_auc": metrics["val_macro_auc"],
        "test_macro_auc": metrics["test_macro_auc"],
        "test_macro_auc_ci": metrics["test_macro_auc_ci"],
        "test_per_class_auc": metrics["per_class_auc"],
        "best_dir": f"{run_dir.location}/best/{trial_set.name}",
        # the single run that won the search (what an HPO tool reports), beside the choice
        "search_winner": {
            "config": plain_config(winner.config, SEARCHED),
            "val_macro_auc": float(winner.metrics[METRIC]),
        },
        "finalists": _finalists(table, finalists) if finalists is not None else None,
    }


def _finalists(table: list[dict], results: list) -> dict:
    """summary.json's record of an arm's finalists: each one's seeds and scores, the noise floor,
    and whether the chosen one's lead over the runner-up exceeds it."""
    floor = noise_floor(table)
    return {
        "trials": len(results),
        "noise_floor": floor,
        "lead": table[0]["mean"] - table[1]["mean"] if len(table) > 1 else None,
        "lead_beyond_noise": lead_beyond_noise(table, floor),
        "table": [
            {
                "config": plain_config(f["config"], SEARCHED),
                "trial": f["trial"],
                "seeds": f["seeds"],
                "val_macro_auc": f["val_macro_auc"],
                "mean": f["mean"],
                "std": f["std"],
                "failed": f["failed"],
            }
            for f in table
        ],
    }


def seconds_per_epoch(name: str, results: list) -> dict[str, float]:
    """The median seconds per epoch of a stage's trials (what the forecast of later stages uses)."""
    per_epoch = [
        epoch_seconds(r.metrics) for r in results if r.metrics and r.metrics.get("training_iteration")
    ]
    return {name: statistics.median(per_epoch)} if per_epoch else {}


SYNTHETIC_NOTE = (
    "**SYNTHETIC data** (generated by raysearch, not PTB-XL): a demo of the pipeline. Its figures say "
    "nothing about the method and are not compared with the paper's."
)


def scope(facts: dict) -> str:
    """What data a summary or report header describes: "synthetic", "subset" (a part of PTB-XL)
    or "ptbxl" (its whole database), from its `synthetic`, `records` and `database_records`."""
    if facts.get("synthetic"):
        return "synthetic"
    total = facts.get("database_records")
    if total is None:  # written before the database's size was kept: judged by the records read
        return "ptbxl" if facts["records"] >= 21000 else "subset"
    return "ptbxl" if total >= PTBXL_RECORDS else "subset"


def data_line(facts: dict) -> str:
    """The data and its size, as the summary and the report name them."""
    n, total = facts["records"], facts.get("database_records")
    if scope(facts) == "subset":
        return (
            f"{facts['data']} ({n:,} records with a superclass; a SUBSET of PTB-XL: "
            f"{f'{total:,}' if total is not None else '?'} of its {PTBXL_RECORDS:,} records)"
        )
    if scope(facts) == "ptbxl" and total is not None:
        return f"{facts['data']} ({n:,} records with a superclass, of PTB-XL's {total:,})"
    return f"{facts['data']} ({n:,} records)"


def data_note(facts: dict) -> list[str]:
    """The warning a table of figures that are not comparable with the paper's begins with."""
    if scope(facts) == "synthetic":
        return [SYNTHETIC_NOTE, ""]
    if scope(facts) == "subset":
        return [
            "**A SUBSET of PTB-XL**: figures from part of the data are not comparable with the paper's "
            "(the whole of PTB-XL), which are left out here.",
            "",
        ]
    return []


def title_mark(facts: dict) -> str:
    return {"synthetic": " (SYNTHETIC data)", "subset": " (a SUBSET of PTB-XL)"}.get(scope(facts), "")


def summary_markdown(summary: dict) -> str:
    """The side-by-side table of summary.json."""
    comparable = scope(summary) == "ptbxl"  # the paper's figures beside ours only on all of PTB-XL
    lines = [
        f"# raysearch summary: {summary['name']}{title_mark(summary)}",
        "",
        *data_note(summary),
        f"Data: {data_line(summary)}. Space: {summary['space']}. "
        f"Trials per arm: {summary['trials']}. Test = fold 10, evaluated once for each chosen configuration.",
        "",
        f"Wall time: {summary['wall_seconds'] / 60:.1f} min over {summary['invocations']} invocation(s).",
        "",
        "| leads | arm | chosen config | val macro-AUC | test macro-AUC (95% CI) | paper (val) | trials "
        "(finished / ASHA-stopped / errored) |",
        "|---|---|---|---|---|---|---|",
    ]
    for leads, arms in summary["leads"].items():
        for arm, r in arms.items():
            cfg = ", ".join(f"{k}={_fmt(v)}" for k, v in r["best_config"].items())
            lo, hi = r["test_macro_auc_ci"]
            paper = PAPER_VAL_AUC.get(leads, {}).get(arm) if comparable else None
            lines.append(
                f"| {leads} | {arm} ({'pseudo = True' if arm == 'student' else 'pseudo = False'}) | {cfg} | "
                f"{r['val_macro_auc']:.4f} | {r['test_macro_auc']:.4f} ({lo:.4f}-{hi:.4f}) | "
                f"{paper if paper else '-'} | {r['trials']} ({r['finished']} / {r['stopped_early']} / "
                f"{r['errored']}) |"
            )
    lines += _finalists_markdown(summary)
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


def _finalists_markdown(summary: dict) -> list[str]:
    """Each arm's finalists: their seeds' validation macro-AUCs, mean and std; the noise floor;
    whether the choice's lead exceeds it; and the search's one-run winner beside the choice."""
    if not summary.get("finalists"):
        return ["", "Finalists off (--finalists 0): each arm's choice is its best single run."]
    lines = [
        "",
        f"## Finalists: each arm's top {summary['finalists']} configuration(s), retrained with "
        f"{summary['finalist_seeds']} more seed(s); the best mean is chosen",
        "",
        "Validation macro-AUC of each run (the first is the search's own), mean ± std. The noise floor is "
        "the std of retraining one configuration, pooled over the finalists.",
    ]
    for leads, arms in summary["leads"].items():
        for arm, r in arms.items():
            f = r.get("finalists")
            if not f:
                continue
            floor = f"{f['noise_floor']:.4f}" if f["noise_floor"] is not None else "-"
            lines += ["", f"**{arm}-{leads}** (noise floor {floor}):", ""]
            lines += ["| | config | runs (val macro-AUC) | mean ± std |", "|---|---|---|---|"]
            for i, row in enumerate(f["table"]):
                cfg = ", ".join(f"{k}={_fmt(v)}" for k, v in row["config"].items())
                runs = ", ".join(f"{v:.4f}" for v in row["val_macro_auc"])
                failed = f" ({row['failed']} failed)" if row["failed"] else ""
                std = f"{row['std']:.4f}" if row["std"] is not None else "-"
                mark = "chosen" if i == 0 else str(i + 1)
                lines.append(f"| {mark} | {cfg} | {runs}{failed} | {row['mean']:.4f} ± {std} |")
            lines += ["", _lead_sentence(f, r)]
    return lines


def _lead_sentence(f: dict, r: dict) -> str:
    """One sentence: whether the choice is ahead beyond noise, and the search's one-run winner."""
    winner = r["search_winner"]
    other = ", ".join(f"{k}={_fmt(v)}" for k, v in winner["config"].items())
    same = winner["config"] == r["best_config"]
    won = "the search's one-run winner" if same else f"not the search's one-run winner ({other})"
    if f["lead_beyond_noise"] is None:
        lead = "With one finalist (or one run each) there is no runner-up to compare with."
    elif f["lead_beyond_noise"]:
        lead = f"Its lead over the runner-up ({f['lead']:+.4f}) exceeds retraining noise."
    else:
        lead = (
            f"Its lead over the runner-up ({f['lead']:+.4f}) is within retraining noise: the two are "
            f"not told apart at this budget."
        )
    return f"The choice is {won}, whose single run scored {winner['val_macro_auc']:.4f} on validation. {lead}"


def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)
