"""A trained model on the command line: `python -m raysearch export ...`, `predict ...`."""

from __future__ import annotations

import argparse
import sys

from raysearch.cli.options import options_of, parser


def export_parser() -> argparse.ArgumentParser:
    from raysearch.deploy.options import FORMATS

    p = parser(
        "raysearch export",
        "Export a trained model as one self-contained file: raw mV signals of its leads (any length of "
        "at least one window) and raw age, sex, height, weight (NaN = missing) in, the 5 class "
        "probabilities out; standardization, metadata encoding and window averaging inside.",
    )
    p.add_argument(
        "model", help="a model folder (RUN_DIR/best/ARM-LEADS, a train --out) or a RUN_DIR with one"
    )
    p.add_argument(
        "--format",
        default="onnx",
        choices=FORMATS,
        help="onnx (onnxruntime), pt2 (torch.export) or torchscript (deprecated upstream: for runtimes "
        "that load only TorchScript)",
    )
    p.add_argument("--out", required=True, help="file to write, e.g. student-2.onnx")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    return p


def export_main(argv: list[str]) -> int:
    a = export_parser().parse_args(argv)
    from raysearch.deploy.export import export_model
    from raysearch.deploy.load import load_model

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
    from raysearch.deploy.options import PredictOptions
    from raysearch.training.config import PRECISIONS

    d = PredictOptions()
    p = parser(
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
    from raysearch.deploy.options import PredictOptions

    options = options_of(PredictOptions, predict_parser().parse_args(argv))
    from raysearch.deploy.predict import predict_records

    result = predict_records(options)
    rows, classes, errors = result["rows"], result["classes"], result["errors"]
    good = [r for r in rows if "error" not in r]
    shown = good if options.out is None else good[:10]
    width = max([len("record")] + [len(r["record"]) for r in shown])
    print(f"{'record':<{width}}  " + "  ".join(f"{c:>5}" for c in classes) + "  labels")
    for r in shown:
        print(
            f"{r['record']:<{width}}  "
            + "  ".join(f"{r[c]:5.3f}" for c in classes)
            + f"  {r.get('labels', '-')}"
        )
    if len(shown) < len(good):
        print(f"... and {len(good) - len(shown)} more")
    for r in errors:
        print(f"raysearch: error: {r['error']}", file=sys.stderr)
    where = f" to {result['out']}" if result["out"] else ""
    failed = f"; {len(errors)} record(s) failed (listed above)" if errors else ""
    print(f"{len(good)} of {len(rows)} records predicted{where}{failed}", file=sys.stderr)
    return 1 if errors else 0
