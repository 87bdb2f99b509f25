"""Command line: `python -m raysearch [search options]`, or a subcommand. The only module that
knows argparse: each command line becomes an options dataclass once, and the layers below take it.

    python -m raysearch --leads 4 --trials 64          # the search (search/run.py)
    python -m raysearch data download|synth|info ...   # the data (data/download.py, synthetic.py, ptbxl.py)
    python -m raysearch train ...                      # one stage without Ray (training/standalone.py)
    python -m raysearch report RUN_DIR --seeds 5       # Table 1: seeds, CIs, paired test (report/run.py)
    python -m raysearch export MODEL --format onnx --out m.onnx   # a file for devices (deploy/export.py)
    python -m raysearch predict MODEL RECORD ...       # probabilities for WFDB records (deploy/predict.py)

User errors (UserError) print one line and exit 2, without a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from raysearch.errors import UserError

SUBCOMMANDS = ("data", "train", "report", "export", "predict", "search")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help shows every option's default and keeps the description's line breaks."""


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog, description=description, formatter_class=_Formatter)


def _options(cls, ns: argparse.Namespace, **extra):
    """The dataclass `cls` from the parsed namespace (the fields it has), plus `extra`."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in vars(ns).items() if k in names}, **extra)


def _add_data_options(p: argparse.ArgumentParser, default, data_help: str = "") -> None:
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


def _add_cluster_options(p: argparse.ArgumentParser, default) -> None:
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


def search_parser() -> argparse.ArgumentParser:
    from raysearch.search.options import SearchOptions

    d = SearchOptions()
    p = _parser(
        "raysearch",
        "Ray Tune search over the contrastive ECG method: the 12-lead teacher, then per lead subset "
        "the student (pseudo = True) and the baseline (pseudo = False).\n"
        "Subcommands: data, train, report, export, predict (python -m raysearch SUBCOMMAND --help).",
    )
    p.add_argument("--leads", default=d.leads, help="lead subset(s): 2, 3, 4, 6, comma-separated, or 'all'")
    p.add_argument(
        "--trials", type=int, default=d.trials, help="trials per arm (student, baseline) per subset"
    )
    _add_data_options(p, d)
    p.add_argument("--space", default=d.space, help="search space YAML (see search_spaces/)")
    p.add_argument(
        "--storage",
        default=d.storage,
        help="where RUN_DIR = STORAGE/NAME goes: a path ($RAYSEARCH_STORAGE) or a URI (s3://, gs://); "
        "on a multi-node cluster a path every node sees",
    )
    p.add_argument("--name", default=d.name, help="run name (default: search-<leads>-<time>)")
    _add_cluster_options(p, d)
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
        "--mlflow",
        default=d.mlflow,
        metavar="TRACKING_URI",
        help="also log every trial to MLflow (sqlite:///PATH.db, http://HOST:PORT, ...): its parameters "
        "and per-epoch metrics, one run per trial in an experiment named like the run "
        "(pip install 'raysearch[mlflow]')",
    )
    p.add_argument("--resume", action="store_true", help="continue the interrupted run --storage/--name")
    return p


def search_main(argv: list[str]) -> int:
    from raysearch.search.options import SearchOptions
    from raysearch.search.run import run_search

    run_search(_options(SearchOptions, search_parser().parse_args(argv)))
    return 0


def data_parser() -> argparse.ArgumentParser:
    from raysearch.data.dataset import default_data
    from raysearch.data.download import DEFAULT_VERSION

    parser = _parser("raysearch data", "PTB-XL data: download, synth, info")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser(
        "download", help="fetch PTB-XL from PhysioNet (resumable, checksummed)", formatter_class=_Formatter
    )
    p.add_argument("dest", nargs="?", default=default_data(), help="folder to fetch into ($RAYSEARCH_DATA)")
    p.add_argument("--version", default=DEFAULT_VERSION, help="PTB-XL release")
    p.add_argument(
        "--rate",
        type=int,
        action="append",
        choices=(100, 500),
        help="sampling rate(s) to fetch; default 100 (repeat for both)",
    )
    p.add_argument(
        "--base-url",
        help="mirror to fetch from instead of PhysioNet: https (http:// is accepted with a warning, "
        "file:// for a local copy)",
    )
    p.add_argument("--workers", type=int, default=8, help="files fetched at once")
    p = sub.add_parser(
        "synth", help="write a synthetic PTB-XL (same layout, real WFDB files)", formatter_class=_Formatter
    )
    p.add_argument("dest", help="folder to write")
    p.add_argument("--records", type=int, default=2000, help="records to generate")
    p.add_argument("--seed", type=int, default=0, help="generator seed")
    p = sub.add_parser("info", help="records, folds, classes, metadata coverage", formatter_class=_Formatter)
    p.add_argument("path", help="PTB-XL folder or 'synthetic'")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--sampling-rate", type=int, default=100, choices=(100, 500), help="records to read (Hz)")
    p.add_argument("--skip-bad-records", action="store_true", help="leave out records that fail to read")
    return parser


def data_main(argv: list[str]) -> int:
    from raysearch.data.dataset import DataOptions

    args = data_parser().parse_args(argv)

    if args.cmd == "download":
        from raysearch.data.download import download

        dest = download(args.dest, args.base_url, args.version, tuple(args.rate or (100,)), args.workers)
        print(f"PTB-XL is complete and verified in {dest}")
    elif args.cmd == "synth":
        from raysearch.data.synthetic import write_synthetic

        if args.records < 20:
            raise UserError(f"--records {args.records}: expected at least 20 (two per fold)")
        dest = write_synthetic(args.dest, args.records, args.seed, progress=True)
        print(f"wrote {args.records} synthetic records to {dest}")
    else:
        from raysearch.data.dataset import open_dataset
        from raysearch.data.ptbxl import summary

        options = DataOptions(args.path, args.sampling_rate, args.skip_bad_records)
        info = summary(open_dataset(options, progress=not args.json))
        if args.json:
            print(json.dumps(info))
        else:
            print(
                f"{info['source']}: {info['records']} records with a diagnostic superclass "
                f"({info['dropped']} dropped without one, {info['skipped_bad_records']} bad skipped), "
                f"{info['sampling_rate']} Hz x {info['samples_per_record']} samples"
                + (" (synthetic)" if info["synthetic"] else "")
            )
            print("folds:    " + "  ".join(f"{k}:{v}" for k, v in info["folds"].items()))
            print("classes:  " + "  ".join(f"{k}:{v}" for k, v in info["classes"].items()))
            print(
                "metadata: "
                + "  ".join(f"{k}:{v / info['records']:.0%}" for k, v in info["metadata_present"].items())
            )
    return 0


def train_parser() -> argparse.ArgumentParser:
    from raysearch.training.config import GRAPHS, SIMS, TRAIN_PRECISIONS, TrainConfig
    from raysearch.training.models import ARCHS
    from raysearch.training.standalone import TrainOptions

    d, o = TrainConfig(), TrainOptions()
    p = _parser("raysearch train", "Train one stage without Ray: the teacher, a student or the baseline.")
    _add_data_options(p, o)
    p.add_argument("--leads", default=d.leads, help="12, 6, 4, 3, 2 or comma-separated lead names")
    p.add_argument("--out", required=True, help="RUN_DIR for the checkpoint, metrics and predictions")
    p.add_argument(
        "--teacher",
        help="teacher checkpoint (RUN_DIR or model.pt, or a search's RUN_DIR with one teacher size): "
        "trains a student (pseudo = True)",
    )
    p.add_argument("--baseline", action="store_true", help="the student without teacher (pseudo = False)")
    p.add_argument("--alpha", type=float, default=d.alpha, help="weight of the similarity loss (student)")
    p.add_argument("--sim", default=d.sim, choices=SIMS, help="similarity between v12 and vx (student)")
    p.add_argument(
        "--embedding-size",
        type=int,
        default=None,
        help=f"embedding size (default: {d.embedding_size} or the teacher's)",
    )
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate of AdamW")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW weight decay")
    p.add_argument("--epochs", type=int, default=d.epochs, help="training epochs")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="records per step")
    p.add_argument("--arch", default="", help=f"encoder: {', '.join(ARCHS)} (default by stage)")
    p.add_argument("--width", type=int, default=0, help="model width (0: the architecture's default)")
    p.add_argument("--depth", type=int, default=0, help="model depth (0: the architecture's default)")
    p.add_argument(
        "--schedule", default=d.schedule, choices=("onecycle", "cosine"), help="learning-rate schedule"
    )
    p.add_argument(
        "--crop-seconds", type=float, default=d.crop_seconds, help="training crop (0: the whole 10 s)"
    )
    p.add_argument("--precision", default=d.precision, choices=TRAIN_PRECISIONS, help="autocast precision")
    p.add_argument(
        "--graphs",
        default=d.graphs,
        choices=GRAPHS,
        help="the training step as one CUDA graph (auto: on CUDA devices)",
    )
    p.add_argument(
        "--teacher-cache",
        type=int,
        default=d.teacher_cache,
        metavar="POSITIONS",
        help="student: compute the teacher's embeddings once at POSITIONS crop starts per record "
        "(e.g. 31) instead of its forward on every crop; 0: off",
    )
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of initialization, shuffling and crops")
    p.add_argument("--n-boot", type=int, default=d.n_boot, help="bootstrap resamples of the test CI")
    return p


def train_main(argv: list[str]) -> int:
    from raysearch.training.config import TrainConfig
    from raysearch.training.standalone import TrainOptions, train_one

    a = train_parser().parse_args(argv)
    config_fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"stage", "embedding_size"}
    config = {k: v for k, v in vars(a).items() if k in config_fields}
    metrics = train_one(_options(TrainOptions, a, config=config))
    lo, hi = metrics["test_macro_auc_ci"]
    print(
        f"val macro-AUC {metrics['val_macro_auc']:.4f}; test macro-AUC {metrics['test_macro_auc']:.4f} "
        f"(95% CI {lo:.4f}-{hi:.4f}); {metrics['wall_seconds']:.0f} s; wrote {a.out}"
    )
    return 0


def report_parser() -> argparse.ArgumentParser:
    from raysearch.report.options import ReportOptions

    d = ReportOptions()
    p = _parser("raysearch report", "Table 1 of the paper from a finished search: seeds, CIs, paired test")
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
    _add_data_options(p, d, "PTB-XL folder or 'synthetic' (default: the search's own --data)")
    _add_cluster_options(p, d)
    return p


def report_main(argv: list[str]) -> int:
    from raysearch.report.markdown import markdown
    from raysearch.report.options import ReportOptions
    from raysearch.report.run import run_report

    options = _options(ReportOptions, report_parser().parse_args(argv))
    report = run_report(options)
    print(markdown(report))
    print(f"wrote {report['header']['run_dir']}/report.md, report.csv, report.json, report.png")
    return 0


def export_parser() -> argparse.ArgumentParser:
    from raysearch.deploy.export import FORMATS

    p = _parser(
        "raysearch export",
        "Export a trained model as one self-contained file: raw mV signals of its leads (any length of "
        "at least one window) and raw age, sex, height, weight (NaN = missing) in, the 5 class "
        "probabilities out; standardization, metadata encoding and window averaging inside.",
    )
    p.add_argument(
        "model", help="a model folder (RUN_DIR/best/ARM-LEADS, a train --out) or a RUN_DIR with one"
    )
    p.add_argument("--format", default="onnx", choices=FORMATS, help="onnx (onnxruntime) or torchscript")
    p.add_argument("--out", required=True, help="file to write, e.g. student-2.onnx")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    return p


def export_main(argv: list[str]) -> int:
    from raysearch.deploy.export import export_model
    from raysearch.deploy.load import load_model

    a = export_parser().parse_args(argv)
    out = export_model(a.model, a.format, a.out, force=a.force)
    info = load_model(out).info
    scores = ", ".join(
        f"{split} macro-AUC {info[f'{split}_macro_auc']:.4f}"
        for split in ("val", "test")
        if info.get(f"{split}_macro_auc") is not None
    )
    print(
        f"wrote {out} ({a.format}, {out.stat().st_size / 1e6:.1f} MB): {info['stage']} on leads "
        f"{','.join(info['leads'])} at {info['sampling_rate']} Hz, window {info['window']} samples"
        + (f"; {scores}" if scores else "")
    )
    return 0


def predict_parser() -> argparse.ArgumentParser:
    from raysearch.deploy.predict import PredictOptions
    from raysearch.training.config import PRECISIONS

    d = PredictOptions()
    p = _parser(
        "raysearch predict",
        "Class probabilities of WFDB records: the model's leads are picked by name, other sampling "
        "rates resampled to the model's, metadata taken from a CSV (columns record, age, sex, height, "
        "weight) or PTB-XL's database csv. A record that cannot be read is listed; the others are "
        "written. Exit status 1 when some record failed.",
    )
    p.add_argument("model", help="a model folder or RUN_DIR, an exported .onnx or TorchScript file")
    p.add_argument("records", nargs="*", help="WFDB records (path without extension, or its .hea)")
    p.add_argument("--data", default=d.data, help="a PTB-XL folder: predict its records instead")
    p.add_argument(
        "--folds", default=d.folds, help="with --data: folds to predict, e.g. 10 or 9,10 (empty: all)"
    )
    p.add_argument("--metadata", default=d.metadata, help="CSV of age, sex, height, weight by record")
    p.add_argument("--out", default=d.out, help="write every row to this .csv (or .jsonl)")
    p.add_argument(
        "--precision",
        default=None,
        choices=PRECISIONS,
        help="a model folder's autocast precision (None: the one it was trained with)",
    )
    p.add_argument("--threads", type=int, default=d.threads, help="onnxruntime threads (0: its default)")
    return p


def predict_main(argv: list[str]) -> int:
    from raysearch.deploy.predict import PredictOptions, predict_records

    options = _options(PredictOptions, predict_parser().parse_args(argv))
    result = predict_records(options)
    rows, classes, errors = result["rows"], result["classes"], result["errors"]
    good = [r for r in rows if "error" not in r]
    shown = good if options.out is None else good[:10]
    width = max([len("record")] + [len(r["record"]) for r in shown])
    print(f"{'record':<{width}}  " + "  ".join(f"{c:>5}" for c in classes))
    for r in shown:
        print(f"{r['record']:<{width}}  " + "  ".join(f"{r[c]:5.3f}" for c in classes))
    if len(shown) < len(good):
        print(f"... and {len(good) - len(shown)} more")
    for r in errors:
        print(f"raysearch: error: {r['error']}", file=sys.stderr)
    where = f" to {result['out']}" if result["out"] else ""
    failed = f"; {len(errors)} record(s) failed (listed above)" if errors else ""
    print(f"{len(good)} of {len(rows)} records predicted{where}{failed}", file=sys.stderr)
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m raysearch` and the `raysearch` script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in SUBCOMMANDS else "search"
    rest = argv[1:] if argv and argv[0] in SUBCOMMANDS else argv
    try:
        commands = {
            "data": data_main,
            "train": train_main,
            "report": report_main,
            "export": export_main,
            "predict": predict_main,
            "search": search_main,
        }
        return commands[command](rest)
    except UserError as e:
        print(f"raysearch: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("raysearch: interrupted", file=sys.stderr)
        return 130
