"""The data and one stage on the command line: `python -m raysearch data ...`, `train ...`."""

from __future__ import annotations

import argparse
import dataclasses
import json

from raysearch.cli.options import Formatter, add_data_options, add_threshold_rule, options_of, parser
from raysearch.errors import UserError


def data_parser() -> argparse.ArgumentParser:
    from raysearch.data.dataset import default_data
    from raysearch.data.download import DEFAULT_VERSION

    top = parser("raysearch data", "PTB-XL data: download, synth, info")
    sub = top.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser(
        "download", help="fetch PTB-XL from PhysioNet (resumable, checksummed)", formatter_class=Formatter
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
        "synth", help="write a synthetic PTB-XL (same layout, real WFDB files)", formatter_class=Formatter
    )
    p.add_argument("dest", help="folder to write")
    p.add_argument("--records", type=int, default=2000, help="records to generate")
    p.add_argument("--seed", type=int, default=0, help="generator seed")
    p = sub.add_parser("info", help="records, folds, classes, metadata coverage", formatter_class=Formatter)
    p.add_argument("path", help="PTB-XL folder or 'synthetic'")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--sampling-rate", type=int, default=100, choices=(100, 500), help="records to read (Hz)")
    p.add_argument("--skip-bad-records", action="store_true", help="leave out records that fail to read")
    return top


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
    from raysearch.training.config import ARCHS, GRAPHS, SIMS, TRAIN_PRECISIONS, TrainConfig, TrainOptions

    d, o = TrainConfig(), TrainOptions()
    p = parser("raysearch train", "Train one stage without Ray: the teacher, a student or the baseline.")
    add_data_options(p, o)
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
    add_threshold_rule(p, o.threshold_rule)
    return p


def train_main(argv: list[str]) -> int:
    from raysearch.training.config import TrainConfig, TrainOptions

    a = train_parser().parse_args(argv)
    from raysearch.training.standalone import train_one

    config_fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"stage", "embedding_size"}
    config = {k: v for k, v in vars(a).items() if k in config_fields}
    metrics = train_one(options_of(TrainOptions, a, config=config))
    lo, hi = metrics["test_macro_auc_ci"]
    print(
        f"val macro-AUC {metrics['val_macro_auc']:.4f}; test macro-AUC {metrics['test_macro_auc']:.4f} "
        f"(95% CI {lo:.4f}-{hi:.4f}); {metrics['wall_seconds']:.0f} s; wrote {a.out}"
    )
    return 0
