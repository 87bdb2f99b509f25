"""`python -m raysearch report RUN_DIR [--seeds K]`: the paper's Table 1 from a finished search.

1. freeze  every arm's configuration as the search chose it on the validation fold
           (RUN_DIR/best/ARM-LEADS) and the best 12-lead teacher (RUN_DIR/teachers), written to
           RUN_DIR/report/configs.json before anything else. Until then the test fold is sealed
           (PTBXL.test_sealed), and the trials only ever see a sealed copy.
2. seeds   (--seeds K) each frozen configuration retrained with K new seeds (search seed + 1..K)
           as one Tune run, a grid over arm x seed, in parallel on the cluster; the students
           distil from the search's own stage-1 teacher of their embedding size, shared through
           the object store. Without --seeds the search's own single-seed runs are used.
3. test    each run's final network evaluated once on validation and test, saved under
           RUN_DIR/report/runs/ARM-LEADS-seedN (a rerun reuses them; an interrupted report
           resumes its Tune run).
4. table   per lead subset and arm, test macro-AUC mean +- std over seeds and the macro-AUC of
           the seed-ensembled predictions with its bootstrap CI; the gain pseudo = True - False
           of the ensembles with a paired bootstrap CI and p-value (the same resampled test
           records for both arms); the difference of the seed means with Welch's t-test over the
           seeds (retraining noise); validation beside test; the paper's validation figure.
           Written as RUN_DIR/report.{md,csv,json,png} and printed.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from raysearch import UserError
from raysearch.data import CLASSES
from raysearch.metrics import bootstrap_ci, macro_auc, paired_bootstrap, per_class_auc, seed_welch
from raysearch.train import TrainConfig, load_checkpoint

ROWS = ("12", "6", "4", "3", "2")
ARMS = ("student", "baseline")  # pseudo = True, pseudo = False
TEACHER = "teacher-12"
_PSEUDO = {"teacher": None, "student": True, "baseline": False}  # the HParams label of each stage


# ------------------------------------------------------------------------------- 1. freeze


def _saved(run_dir: Path, what: str) -> dict:
    path = run_dir / "config.json"
    if not path.is_file():
        raise UserError(f"{path}: missing; expected the {what} saved by the search")
    return json.loads(path.read_text())["config"]


def freeze(run_dir: Path, location: str | None = None) -> dict:
    """Every arm's configuration as the search chose it (validation fold only): {name: config},
    plus where each teacher lives. Raises UserError, naming `location` (RUN_DIR as the user gave
    it), when RUN_DIR is not a finished search."""
    path = run_dir / "summary.json"
    if not path.is_file():
        raise UserError(
            f"{location or run_dir}/summary.json: missing; expected the RUN_DIR of a finished search "
            f"(it writes summary.json when every stage is done)"
        )
    summary = json.loads(path.read_text())
    teacher_dirs = {}
    for size, t in summary["teachers"].items():
        saved = run_dir / "teachers" / size
        teacher_dirs[int(size)] = str(saved if saved.is_dir() else Path(t["given"]))
    # the 12-lead row: the teacher the search rated best on validation (a given one has no score)
    best = max(summary["teachers"], key=lambda s: summary["teachers"][s].get("val_macro_auc", -1.0))
    configs = {TEACHER: load_checkpoint(teacher_dirs[int(best)])["config"]}
    for leads, arms in summary["leads"].items():
        for arm in arms:
            configs[f"{arm}-{leads}"] = _saved(run_dir / "best" / f"{arm}-{leads}", f"chosen {arm}")
    return {
        "configs": configs,
        "teachers": {str(k): v for k, v in teacher_dirs.items()},
        "search_seed": int(summary.get("seed", 0)),
        "summary": summary,
    }


def write_frozen(out: Path, frozen: dict) -> str:
    """Write configs.json (before any training or test read); its digest goes in the header."""
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(
        {k: frozen[k] for k in ("configs", "teachers", "search_seed")}, indent=1, sort_keys=True
    )
    (out / "configs.json").write_text(text)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# -------------------------------------------------------------------------------- 2. seeds


def run_seeds(search, frozen: dict, data, out: Path, seeds: list[int]) -> None:
    """Retrain every frozen configuration with each seed (the runs not already in `out/runs`) as
    one Tune run, then evaluate each finished run once (validation and test). `search` is the
    report's Search: RUN_DIR, its storage (Tune writes the runs' trials there) and the options."""
    import ray
    from ray import tune

    from raysearch.tuner import put_sealed, start_ray

    todo = [
        (name, seed)
        for name in frozen["configs"]
        for seed in seeds
        if not (out / "runs" / f"{name}-seed{seed}" / "metrics.json").is_file()
    ]
    if not todo:
        return
    args = search.args
    search.data = data
    start_ray(args, None if search.uri else search.run_dir)
    try:
        search.data_ref = put_sealed(data)
        search.put_teachers({int(size): load_checkpoint(path) for size, path in frozen["teachers"].items()})
        common = search._common({})
        jobs = [
            {
                **frozen["configs"][name],
                **{k: common[k] for k in ("threads", "device")},
                "seed": seed,
                "run": f"{name}-seed{seed}",
                "pseudo": _PSEUDO[frozen["configs"][name]["stage"]],
            }
            for name, seed in todo
        ]
        # the experiment is named by what it trains, so a rerun restores exactly this grid
        tag = hashlib.sha256(json.dumps(todo).encode()).hexdigest()[:8]
        name = f"report-{tag}"
        print(
            f"report: training {len(jobs)} run(s) ({len(seeds)} seed(s) x {len(frozen['configs'])} "
            f"arms) as Tune run {name}",
            file=sys.stderr,
            flush=True,
        )

        def make():
            return tune.Tuner(
                search._trainable(),
                param_space={"job": tune.grid_search(jobs)},
                tune_config=tune.TuneConfig(
                    metric="val_macro_auc",
                    mode="max",
                    reuse_actors=True,
                    max_concurrent_trials=args.max_concurrent,
                ),
                run_config=search._run_config(name),
            )

        results = search.fit(name, make, len(jobs))
        failed = []
        for result in results:
            run = result.config["job"]["run"]
            epochs = int(result.config["job"]["epochs"])
            if result.error is not None or result.metrics.get("training_iteration") != epochs:
                failed.append(run)
                continue
            data.test_sealed = False  # configurations frozen (configs.json) and this run trained
            search.test_once(result, out / "runs" / run, with_ci=False)
        if failed:
            raise UserError(
                f"{len(failed)} report run(s) failed ({', '.join(sorted(failed))}); the others are saved "
                f"in {out / 'runs'}; see {search.location}/{name}"
            )
    finally:
        ray.shutdown()


def single_seed(frozen: dict, data, out: Path, run_dir: Path) -> dict[str, list[Path]]:
    """Without --seeds: the search's own runs (RUN_DIR/best), the teacher evaluated here once."""
    from raysearch.train import evaluate_frozen

    runs = {name: [run_dir / "best" / name] for name in frozen["configs"] if name != TEACHER}
    seed = frozen["search_seed"]
    teacher_out = out / "runs" / f"{TEACHER}-seed{seed}"
    if not (teacher_out / "metrics.json").is_file():
        size = str(TrainConfig(**frozen["configs"][TEACHER]).embedding_size)
        data.test_sealed = False  # the teacher was chosen by the search, on validation
        evaluate_frozen(load_checkpoint(frozen["teachers"][size]), data, teacher_out, "auto", with_ci=False)
    runs[TEACHER] = [teacher_out]
    return runs


# -------------------------------------------------------------------------------- 3. table


def _load(runs: list[Path], split: str) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    arrays = [np.load(r / f"predictions_{split}.npz") for r in runs]
    for a, r in zip(arrays, runs, strict=True):
        if not np.array_equal(a["ecg_id"], arrays[0]["ecg_id"]):
            raise UserError(
                f"{r}: scored other {split} records than {runs[0]}; were they made from one dataset?"
            )
    return arrays[0]["ecg_id"], arrays[0]["y_true"], [a["y_score"] for a in arrays]


def arm_figures(runs: list[Path], loaded: dict, n_boot: int) -> dict:
    """Per split (`loaded`: split -> _load's tuple): each seed's macro-AUC, their mean and std,
    and the seed-ensembled predictions' macro-AUC (with a bootstrap CI on test) and per-class AUC."""
    out = {"runs": [str(r) for r in runs], "seeds": len(runs)}
    for split, (_, y, scores) in loaded.items():
        per_seed = [macro_auc(y, s) for s in scores]
        ensemble = np.mean(scores, axis=0)
        fig = {
            "per_seed": per_seed,
            "mean": float(np.mean(per_seed)),
            "std": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else None,
            "ensemble": macro_auc(y, ensemble),
            "ensemble_per_class": dict(zip(CLASSES, per_class_auc(y, ensemble).tolist(), strict=True)),
        }
        if split == "test":
            fig["ensemble_ci"] = list(bootstrap_ci(y, ensemble, n_boot=n_boot, seed=0))
        out[split] = fig
    return out


def build_report(runs: dict[str, list[Path]], frozen: dict, n_boot: int) -> dict:
    """The table's numbers: one row per lead subset (12 = the teacher)."""
    from raysearch.tuner import PAPER_VAL_AUC

    rows, incomplete = [], []
    for leads in ROWS:
        arms = [TEACHER] if leads == "12" else [f"{a}-{leads}" for a in ARMS]
        if not all(a in runs for a in arms):
            if any(a in runs for a in arms):  # e.g. a search run with --no-baseline: no comparison
                incomplete.append(leads)
            continue
        loaded = {a: {split: _load(runs[a], split) for split in ("val", "test")} for a in arms}
        row = {"leads": leads, "paper_val": PAPER_VAL_AUC.get(leads, {}), "arms": {}}
        for a in arms:
            row["arms"][a.split("-")[0]] = {
                **arm_figures(runs[a], loaded[a], n_boot),
                "config": frozen["configs"][a],
            }
        if leads != "12":
            ids, y, s = loaded[f"student-{leads}"]["test"]
            other, _, b = loaded[f"baseline-{leads}"]["test"]
            if not np.array_equal(ids, other):  # the paired bootstrap pairs records by position
                raise UserError(f"{leads} leads: the two arms scored different test records")
            row["gain"] = paired_bootstrap(y, np.mean(s, axis=0), np.mean(b, axis=0), n_boot=n_boot, seed=0)
            per_seed = [row["arms"][a]["test"]["per_seed"] for a in ARMS]
            row["gain"]["of_seed_means"] = float(np.mean(per_seed[0]) - np.mean(per_seed[1]))
            if min(map(len, per_seed)) > 1:  # training noise: the seeds' spread, Welch's t-test
                row["gain"]["seed_welch"] = seed_welch(*per_seed)
        rows.append(row)
    return {"rows": rows, "incomplete": incomplete, "classes": list(CLASSES)}


# ------------------------------------------------------------------------------- 4. outputs


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
                        "pseudo": _PSEUDO[arm],
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
    """Left: macro-AUC per lead subset, both arms' ensembles with CIs as error bars, paper as
    markers. Right: the gain itself, with the paired bootstrap's CI (and Welch's over the seeds),
    beside the paper's claimed gain: the arms' own CIs overlap even where the gain is clear."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, gx) = plt.subplots(1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [3, 2]})
    styles = {
        "teacher": ("black", "12 leads: teacher"),
        "student": ("tab:blue", "pseudo = True (teacher)"),
        "baseline": ("tab:orange", "pseudo = False (baseline)"),
    }
    drawn = set()
    for x, row in enumerate(report["rows"]):
        for arm, fig_ in row["arms"].items():
            color, label = styles[arm]
            dx = {"teacher": 0.0, "student": -0.12, "baseline": 0.12}[arm]
            t = fig_["test"]
            _point_ci(
                ax, x + dx, t["ensemble"], t["ensemble_ci"], "o", color, None if arm in drawn else label
            )
            if len(t["per_seed"]) > 1:
                ax.plot([x + dx] * len(t["per_seed"]), t["per_seed"], ".", color=color, alpha=0.4)
            drawn.add(arm)
            paper = row["paper_val"].get(arm)
            if paper:
                ax.plot(
                    x + dx,
                    paper,
                    "x",
                    color=color,
                    markersize=8,
                    label=None if "paper" + arm in drawn else f"paper (val): {label.split(' (')[0]}",
                )
                drawn.add("paper" + arm)
    ax.set_xticks(range(len(report["rows"])), [r["leads"] for r in report["rows"]])
    ax.set_xlabel("leads")
    ax.set_ylabel("test macro-AUC (ensemble, 95% CI)")
    k = report["header"]["seeds"]
    ax.set_title(
        f"test macro-AUC, {k} seeds per arm (dots: single seeds)"
        if k > 1
        else "test macro-AUC, single seed (the search's own runs)"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3)
    _plot_gains(gx, [r for r in report["rows"] if "gain" in r])
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


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


def _plot_gains(ax, rows: list[dict]) -> None:
    """The gain pseudo = True - False per lead subset, both tests' CIs, the paper's gain, zero."""
    if not rows:  # e.g. a search run with --no-baseline
        ax.text(0.5, 0.5, "no lead subset with both arms", ha="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    for x, row in enumerate(rows):
        g = row["gain"]
        first = x == 0
        _point_ci(
            ax, x - 0.1, g["gain"], g["ci"], "o", "tab:blue", first and "ensembles, paired bootstrap 95% CI"
        )
        w = g.get("seed_welch")
        if w:
            _point_ci(ax, x + 0.1, w["diff"], w["ci"], "s", "tab:green", first and "seed means, Welch 95% CI")
        paper = row["paper_val"]
        if "student" in paper and "baseline" in paper:
            ax.plot(
                x,
                paper["student"] - paper["baseline"],
                "x",
                color="black",
                markersize=8,
                label="paper (val, single runs)" if first else None,
            )
    ax.axhline(0, color="grey", linewidth=1)
    ax.set_xticks(range(len(rows)), [r["leads"] for r in rows])
    ax.set_xlabel("leads")
    ax.set_ylabel("gain in test macro-AUC")
    ax.set_title("gain pseudo = True − False")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)


def _budget(configs: dict) -> str:
    parts = []
    for name in (TEACHER, next((n for n in configs if n.startswith("student")), None)):
        if name:
            c = TrainConfig(**configs[name]).resolved()
            parts.append(
                f"{c.stage}: {c.arch} width {c.width} depth {c.depth}, {c.epochs} epochs, "
                f"batch {c.batch_size}, {c.crop_seconds} s crops, {c.precision}"
            )
    return "; ".join(parts)


def _device(args: argparse.Namespace) -> str:
    import os

    import torch

    if args.gpus_per_trial > 0 and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, {args.gpus_per_trial:g} GPU per trial"
    return f"CPU, {os.cpu_count()} cores, {args.cpus_per_trial:g} per trial"


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


def _training_seconds(runs: dict[str, list[Path]]) -> float:
    """Sum of the epoch times (training + validation) of every run in the table."""
    total = 0.0
    for paths in runs.values():
        for path in paths:
            history = json.loads((path / "metrics.json").read_text()).get("history", [])
            total += sum(h.get("epoch_seconds", 0.0) for h in history)
    return total


def _located(path: Path, run_dir: Path, location: str) -> str:
    return f"{location}/{path.relative_to(run_dir)}" if path.is_relative_to(run_dir) else str(path)


def _invocations(n: int | None) -> str:
    return "its last invocation" if n is None else f"{n} invocation{'s' if n != 1 else ''} in all"


def _minutes(seconds) -> str:
    return "?" if seconds is None else f"{seconds / 60:.1f} min"


def open_run(args: argparse.Namespace):
    """The search's RUN_DIR as a Search: a path, or a URI (s3://, gs://) whose files the report
    needs are staged locally (as the search stages them) and whose outputs are synced back."""
    from raysearch.tuner import Search

    location = args.run_dir.rstrip("/")
    if "://" in location:
        args.storage, _, args.name = location.rpartition("/")
    else:
        path = Path(location).expanduser().resolve()
        args.storage, args.name = str(path.parent), path.name
    args.resume = True  # with a URI, Search stages progress.json, teachers and best/
    args.seed = 0  # each job sets its own seed; this is only Search's default
    search = Search(args, {}, [])
    search.sync("down", ("summary.json", "report"))  # "report": the runs an earlier report saved
    search.resume_hint = "run the same report command again to continue"
    return search


# -------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    from raysearch.cli import add_data_options

    p = argparse.ArgumentParser(
        prog="raysearch report",
        description="Table 1 of the paper from a finished search: seeds, CIs, paired test",
    )
    p.add_argument("run_dir", help="the RUN_DIR of a finished search (STORAGE/NAME)")
    p.add_argument(
        "--seeds",
        type=int,
        nargs="?",
        const=5,
        default=None,
        help="retrain every chosen configuration with K new seeds (default K: 5); "
        "without it, summarize the search's single-seed runs",
    )
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")
    add_data_options(p)
    p.set_defaults(data=None)  # default: the search's own --data
    p.add_argument("--address", default=None, help="join this Ray cluster")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--gpus-per-trial", type=float, default=0.0)
    p.add_argument("--max-concurrent", type=int, default=0)
    p.add_argument("--max-failures", type=int, default=2)
    p.add_argument("--num-cpus", type=int, default=None)
    return p


def _report(args: argparse.Namespace, search, frozen: dict, digest: str, t0: float) -> str:
    """Everything after the freeze: the runs (seeded or the search's), the table, its files."""
    run_dir, location, out = search.run_dir, search.location, search.run_dir / "report"
    summary = frozen["summary"]
    args.data = args.data or summary["data"]
    from raysearch.cli import load_data

    data = load_data(args)
    data.test_sealed = True  # opened by the steps below, each after configs.json exists
    seeds = (
        [frozen["search_seed"] + 1 + k for k in range(args.seeds)] if args.seeds else [frozen["search_seed"]]
    )
    if args.seeds:
        run_seeds(search, frozen, data, out, seeds)
        runs = {name: [out / "runs" / f"{name}-seed{s}" for s in seeds] for name in frozen["configs"]}
    else:
        runs = single_seed(frozen, data, out, run_dir)
    report = build_report(runs, frozen, args.n_boot)
    for row in report["rows"]:  # name the runs where they live (a URI RUN_DIR's, not the staging)
        for fig in row["arms"].values():
            fig["runs"] = [_located(Path(r), run_dir, location) for r in fig["runs"]]
    report["header"] = {
        "run_dir": location,
        "seeds": args.seeds or 1,
        "seed_values": seeds,
        "configs_sha256": digest,
        "data": summary["data"],
        "records": summary["records"],
        "space": summary["space"],
        "trials": summary["trials"],
        "search_seed": frozen["search_seed"],
        "budget": _budget(frozen["configs"]),
        "device": _device(args),
        "wall": {
            # searches before the total was kept recorded their last invocation only
            "search": _minutes(summary.get("wall_seconds", summary.get("wall_seconds_this_invocation"))),
            "search_invocations": summary.get("invocations"),
            "report": _minutes(time.perf_counter() - t0),
            # the seed runs may have been trained by an earlier invocation: their own epoch times
            "runs_training": _minutes(_training_seconds(runs)),
        },
    }
    (run_dir / "report.json").write_text(json.dumps(report, indent=1))
    write_csv(report, run_dir / "report.csv")
    plot(report, run_dir / "report.png")
    text = markdown(report)
    (run_dir / "report.md").write_text(text)
    return text


def report_main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.seeds is not None and args.seeds < 1:
        raise UserError(f"--seeds {args.seeds}: expected at least 1")
    t0 = time.perf_counter()
    search = open_run(args)
    run_dir, location = search.run_dir, search.location
    frozen = freeze(run_dir, location)
    out = run_dir / "report"
    digest = write_frozen(out, frozen)  # frozen before any training and before the test fold is read
    search.sync("up")  # configs.json at RUN_DIR before anything reads the test fold
    try:
        text = _report(args, search, frozen, digest, t0)
    finally:
        search.sync("up")  # what was made, the runs evaluated so far too when some failed
    print(text)
    print(f"wrote {location}/report.md, report.csv, report.json, report.png")
    return 0
