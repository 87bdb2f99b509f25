"""What every command shares on the command line: the help format, the data and cluster
options, and a command line turned into an options dataclass."""

from __future__ import annotations

import argparse
import dataclasses


class Formatter(argparse.RawDescriptionHelpFormatter):
    """--help shows each option's default once (unless its help already says it) and keeps the
    description's line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        silent = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        silent = silent or not action.option_strings
        if "(default" in text or "default:" in text or silent:
            return text
        return f"{text} (default: %(default)s)"


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog, description=description, formatter_class=Formatter)


def options_of(cls, ns: argparse.Namespace, **extra):
    """The dataclass `cls` from the parsed namespace (the fields it has), plus `extra`."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in vars(ns).items() if k in names}, **extra)


def add_data_options(p: argparse.ArgumentParser, default, data_help: str = "") -> None:
    p.add_argument(
        "--data",
        default=default.data,
        help=data_help
        or "PTB-XL folder (PhysioNet layout; $RAYSEARCH_DATA sets the default), or 'synthetic' for a "
        "generated demo dataset",
    )
    p.add_argument(
        "--sampling-rate",
        type=int,
        default=default.sampling_rate,
        choices=(100, 500),
        help="records to read (Hz)",
    )
    p.add_argument(
        "--skip-bad-records",
        action="store_true",
        help="continue without records that fail to read (they are counted and listed)",
    )
    p.add_argument(
        "--synthetic-records",
        type=int,
        default=default.synthetic_records,
        help="records of --data synthetic (generated once, cached)",
    )


def add_threshold_rule(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument(
        "--threshold-rule",
        default=default,
        help="how each class's threshold is fitted on validation (after a temperature per class "
        "calibrates the probabilities): f1 (best F1), youden (best sensitivity + specificity - 1) or "
        "sensitivity:X (the highest threshold with sensitivity >= X, e.g. sensitivity:0.9)",
    )


def add_cluster_options(p: argparse.ArgumentParser, default) -> None:
    p.add_argument(
        "--address",
        default=default.address,
        help="join this Ray cluster ($RAY_ADDRESS); else start a local Ray",
    )
    p.add_argument(
        "--num-cpus", type=int, default=default.num_cpus, help="CPUs of a local Ray (default: all)"
    )
    p.add_argument(
        "--cpus-per-trial", type=float, default=default.cpus_per_trial, help="CPUs each trial gets"
    )
    p.add_argument(
        "--gpus-per-trial",
        type=float,
        default=default.gpus_per_trial,
        help="GPUs each trial gets; a fraction 1/P packs P trials on one GPU",
    )
    p.add_argument(
        "--max-concurrent",
        type=int,
        default=default.max_concurrent,
        help="trials running at once (0: as many as the CPUs allow)",
    )
    p.add_argument(
        "--max-failures",
        type=int,
        default=default.max_failures,
        help="restarts of a crashed trial from its last checkpoint",
    )
    p.add_argument("--verbose", action="store_true", help="show Ray Tune's own tables and logs")
