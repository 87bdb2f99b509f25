"""The search and the report on the command line: `python -m raysearch [options]`, `report RUN_DIR`."""

from __future__ import annotations

import argparse

from raysearch.cli.options import (
    add_cluster_options,
    add_data_options,
    add_threshold_rule,
    options_of,
    parser,
)


def search_parser() -> argparse.ArgumentParser:
    from raysearch.searching.options import SearchOptions

    d = SearchOptions()
    p = parser(
        "raysearch",
        "Ray Tune search over the contrastive ECG method: the 12-lead teacher, then per lead subset "
        "the student (pseudo = True) and the baseline (pseudo = False).\n"
        "Subcommands: data, train, report, export, predict (python -m raysearch SUBCOMMAND --help).",
    )
    p.add_argument("--leads", default=d.leads, help="lead subset(s): 2, 3, 4, 6, comma-separated, or 'all'")
    p.add_argument(
        "--trials", type=int, default=d.trials, help="trials per arm (student, baseline) per subset"
    )
    add_data_options(p, d)
    p.add_argument(
        "--space",
        default=d.space,
        help="search space: a shipped one by name (default: the paper's "
        "space when trials get GPUs, the CPU budget otherwise; tiny: a minute-long demo) or a YAML file "
        "(search_spaces/ shows the format)",
    )
    p.add_argument(
        "--storage",
        default=d.storage,
        help="where RUN_DIR = STORAGE/NAME goes: a path ($RAYSEARCH_STORAGE) or a URI (s3://, gs://); "
        "on a multi-node cluster a path every node sees",
    )
    p.add_argument("--name", default=d.name, help="run name (default: search-<leads>-<time>)")
    add_cluster_options(p, d)
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the searches and of every trial")
    p.add_argument(
        "--teacher",
        default=d.teacher,
        help="a teacher checkpoint (its folder, or a search's RUN_DIR with one teacher size): "
        "skip the teacher search",
    )
    p.add_argument(
        "--teacher-trials", type=int, default=d.teacher_trials, help="teacher trials per embedding size"
    )
    p.add_argument("--no-baseline", action="store_true", help="skip the pseudo = False arm")
    p.add_argument(
        "--finalists",
        type=int,
        default=d.finalists,
        metavar="K",
        help="after an arm's trials, retrain its top K configurations with --finalist-seeds more seeds "
        "and choose by the mean (default: 3 when trials get GPUs, 2 on CPUs; 0: one run decides)",
    )
    p.add_argument(
        "--finalist-seeds",
        type=int,
        default=d.finalist_seeds,
        metavar="S",
        help="further seeds per finalist (the report's first S seeds: report --seeds reuses them)",
    )
    p.add_argument(
        "--mlflow",
        default=d.mlflow,
        metavar="TRACKING_URI",
        help="also log every trial to MLflow (sqlite:///PATH.db, http://HOST:PORT, ...): its parameters "
        "and per-epoch metrics, one run per trial in an experiment named like the run "
        "(pip install 'raysearch[mlflow]')",
    )
    p.add_argument("--resume", action="store_true", help="continue the interrupted run --storage/--name")
    add_threshold_rule(p, d.threshold_rule)
    return p


def search_main(argv: list[str]) -> int:
    from raysearch.searching.options import SearchOptions

    options = options_of(SearchOptions, search_parser().parse_args(argv))
    from raysearch.searching.run import run_search  # Ray and torch: after --help has answered

    run_search(options)
    return 0


def report_parser() -> argparse.ArgumentParser:
    from raysearch.reporting.options import CHOSEN_BY, ReportOptions

    d = ReportOptions()
    p = parser("raysearch report", "Table 1 of the paper from a finished search: seeds, CIs, paired test")
    p.add_argument("run_dir", help="the RUN_DIR of a finished search (STORAGE/NAME, a path or a URI)")
    p.add_argument(
        "--seeds",
        type=int,
        nargs="?",
        const=5,
        default=None,
        help="retrain every chosen configuration with K new seeds (K default 5); "
        "without it, summarize the search's single-seed runs",
    )
    p.add_argument("--n-boot", type=int, default=d.n_boot, help="bootstrap resamples")
    p.add_argument(
        "--chosen-by",
        choices=CHOSEN_BY,
        default=d.chosen_by,
        help="which configuration of each arm: the finalists' best seed mean, or the best first run "
        "(what a search without finalists chooses; written as report-first-run.*, needs --seeds) "
        "(default: the search's own choice)",
    )
    add_threshold_rule(p, d.threshold_rule)
    add_data_options(p, d, "PTB-XL folder or 'synthetic' (default: the search's own --data)")
    add_cluster_options(p, d)
    return p


def report_main(argv: list[str]) -> int:
    from raysearch.reporting.options import ReportOptions

    options = options_of(ReportOptions, report_parser().parse_args(argv))
    from raysearch.reporting.markdown import markdown
    from raysearch.reporting.run import run_report

    report = run_report(options)
    print(markdown(report))
    print(f"wrote {report['header']['run_dir']}/{', '.join(report['written'])}")
    return 0
