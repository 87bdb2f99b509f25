"""Benchmark a trained model on a CPU as a device would run it: one 10 s record's latency and
records per second, for the exported ONNX file (onnxruntime), the TorchScript file and PyTorch.

    python bench/bench_predict.py runs/x/best/student-2 runs/x/teachers/128 --data ptb-xl --threads 1

Each model folder is exported to both formats in a temporary folder; the inputs are real fold-10
records of --data (read as `predict` reads them, with their metadata). Latency: the median of
`--repeats` single-record predictions; throughput: the median of batches of `--batch` records.
PyTorch runs in fp32 (what the exports compute) and in the model's training precision. Prints a
markdown table and writes bench-predict.json beside --json if given.
"""

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from raysearch.data.database import raw_metadata, read_tables
from raysearch.deploy.export import export_model
from raysearch.deploy.load import load_model
from raysearch.deploy.records import read_record


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: first-call allocations and graph optimization are not the steady state
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def fold10(root: Path, leads: tuple[str, ...], rate: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    db, _ = read_tables(root)
    db = db[db["strat_fold"] == 10].head(n)
    column = "filename_lr" if rate <= 100 else "filename_hr"
    signals = np.stack([read_record(str(root / name), leads, rate) for name in db[column]])
    return signals, raw_metadata(db)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", help="model folders (model.pt + config.json)")
    p.add_argument("--data", required=True, help="PTB-XL folder: fold-10 records are the inputs")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for every runtime")
    p.add_argument("--batch", type=int, default=64, help="records per batch for throughput")
    p.add_argument("--repeats", type=int, default=50, help="timed repetitions per figure")
    p.add_argument("--json", help="write the figures here too")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for folder in a.models:
            reference = load_model(folder)
            name = f"{reference.config.stage}-{len(reference.leads)}"
            signals, meta = fold10(Path(a.data), reference.leads, reference.sampling_rate, a.batch)
            runtimes = {
                "onnxruntime": export_model(folder, "onnx", Path(tmp) / f"{name}.onnx"),
                "torchscript": export_model(folder, "torchscript", Path(tmp) / f"{name}.pt"),
                "pytorch fp32": None,
                f"pytorch {reference.config.precision}": None,
            }
            for runtime, file in runtimes.items():
                if file is not None:
                    model = load_model(file, threads=a.threads)
                else:
                    model = load_model(folder, precision=runtime.split()[-1])
                one = median_seconds(lambda m=model, x=signals, md=meta: m.predict(x[:1], md[:1]), a.repeats)
                batch = median_seconds(
                    lambda m=model, x=signals, md=meta: m.predict(x, md), max(a.repeats // 5, 3)
                )
                rows.append(
                    {
                        "model": name,
                        "runtime": runtime,
                        "latency_ms": round(one * 1e3, 2),
                        "records_per_s": round(len(signals) / batch, 1),
                        "file_MB": round(file.stat().st_size / 1e6, 2) if file else None,
                    }
                )
                print(rows[-1], flush=True)
    out = {
        "machine": f"{platform.processor() or platform.machine()}, {a.threads} thread(s)",
        "torch": torch.__version__,
        "batch": a.batch,
        "rows": rows,
    }
    print("| model | runtime | latency, one 10 s record (ms) | records/s (batch) | file (MB) |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['model']} | {r['runtime']} | {r['latency_ms']} | {r['records_per_s']} | "
            f"{r['file_MB'] if r['file_MB'] is not None else '-'} |"
        )
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
