"""Command line: `python -m raysearch [search options]`, or a subcommand.

    python -m raysearch --leads 4 --trials 64          # the search (see tuner.py)
    python -m raysearch data download|synth|info ...   # the data layer (data.py)
    python -m raysearch train ...                      # one stage without Ray (train.py)
    python -m raysearch report RUN_DIR --seeds 5       # Table 1: seeds, CIs, paired test (report.py)

User errors (UserError) print one line and exit 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

from raysearch import UserError

SUBCOMMANDS = ("data", "train", "report", "search")


def add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        default="synthetic",
        help="PTB-XL folder (PhysioNet layout) or 'synthetic' (generated once, cached)",
    )
    p.add_argument("--sampling-rate", type=int, default=100, choices=(100, 500))
    p.add_argument(
        "--skip-bad-records",
        action="store_true",
        help="continue without records that fail to read (they are counted and listed)",
    )
    p.add_argument("--synthetic-records", type=int, default=2000, help="size of --data synthetic")


def load_data(args: argparse.Namespace):
    """The dataset named by --data, saying how many bad records were skipped."""
    from raysearch.data import open_dataset

    ds = open_dataset(args.data, args.sampling_rate, args.skip_bad_records, args.synthetic_records)
    if ds.skipped:
        print(f"skipped {len(ds.skipped)} bad record(s) (--skip-bad-records)", file=sys.stderr)
    return ds


def data_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="raysearch data", description="PTB-XL data: download, synth, info")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("download", help="fetch PTB-XL from PhysioNet (resumable, checksummed)")
    p.add_argument("dest", nargs="?", default="ptb-xl")
    p.add_argument("--version", default="1.0.3")
    p.add_argument(
        "--rate",
        type=int,
        action="append",
        choices=(100, 500),
        help="sampling rate(s) to fetch; default 100 (repeat for both)",
    )
    p.add_argument("--base-url", help="mirror to fetch from instead of PhysioNet")
    p.add_argument("--workers", type=int, default=8)
    p = sub.add_parser("synth", help="write a synthetic PTB-XL (same layout, real WFDB files)")
    p.add_argument("dest")
    p.add_argument("--records", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("info", help="records, folds, classes, metadata coverage")
    p.add_argument("path", help="PTB-XL folder or 'synthetic'")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--sampling-rate", type=int, default=100, choices=(100, 500))
    p.add_argument("--skip-bad-records", action="store_true")
    args = parser.parse_args(argv)

    if args.cmd == "download":
        from raysearch.download import download

        dest = download(args.dest, args.base_url, args.version, tuple(args.rate or (100,)), args.workers)
        print(f"PTB-XL is complete and verified in {dest}")
    elif args.cmd == "synth":
        from raysearch.synth import write_synthetic

        if args.records < 20:
            raise UserError(f"--records {args.records}: expected at least 20 (two per fold)")
        dest = write_synthetic(args.dest, args.records, args.seed, progress=True)
        print(f"wrote {args.records} synthetic records to {dest}")
    else:
        from raysearch.data import open_dataset, summary

        info = summary(
            open_dataset(args.path, args.sampling_rate, args.skip_bad_records, progress=not args.json)
        )
        if args.json:
            print(json.dumps(info))
        else:
            print(
                f"{info['source']}: {info['records']} records with a diagnostic superclass "
                f"({info['dropped']} dropped without one, {info['skipped_bad_records']} bad skipped), "
                f"{info['sampling_rate']} Hz x {info['samples_per_record']} samples"
            )
            print("folds:    " + "  ".join(f"{k}:{v}" for k, v in info["folds"].items()))
            print("classes:  " + "  ".join(f"{k}:{v}" for k, v in info["classes"].items()))
            print(
                "metadata: "
                + "  ".join(f"{k}:{v / info['records']:.0%}" for k, v in info["metadata_present"].items())
            )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m raysearch` and the `raysearch` script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in SUBCOMMANDS else "search"
    rest = argv[1:] if argv and argv[0] in SUBCOMMANDS else argv
    try:
        if command == "data":
            return data_main(rest)
        if command == "train":
            from raysearch.train import train_main

            return train_main(rest)
        if command == "report":
            from raysearch.report import report_main

            return report_main(rest)
        from raysearch.tuner import search_main

        return search_main(rest)
    except UserError as e:
        print(f"raysearch: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("raysearch: interrupted", file=sys.stderr)
        return 130
