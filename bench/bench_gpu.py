"""GPU memory and throughput of one trial at a search space's settings, and of P trials packed on one GPU.

    python bench/bench_gpu.py --space search_spaces/default.yaml --out gpu.json

Part 1 (`memory`): every stage the space trains (teacher at each embedding size, student and
baseline at 6 and 2 leads at the largest embedding) runs one epoch in a fresh process on a
dataset of PTB-XL's size (random int16 samples: memory and speed do not depend on the values).
Each process reports the device memory in use at its peak (CUDA context included, read from
`torch.cuda.mem_get_info`, nothing else on the GPU), PyTorch's own peak allocation, and
samples/s. That is the memory a trial needs, i.e. what `--gpus-per-trial` must leave room for.

Part 2 (`packing`): P = 1, 2, 4, 8 student trials run at once on the one GPU, the way
`--gpus-per-trial 1/P` places them, and the aggregate samples/s tells how far packing pays.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np

TRAIN_RECORDS, VAL_RECORDS = 17_084, 2_146  # PTB-XL 1.0.1 with a superclass: folds 1-8 and 9


def random_ptbxl(seed: int = 0):
    """A PTBXL of the real dataset's size and dtypes, random samples (timing/memory only)."""
    from raysearch.data import PTBXL
    from raysearch.metadata import META_DIM
    from raysearch.vocabulary import CLASSES

    n = TRAIN_RECORDS + VAL_RECORDS
    rng = np.random.default_rng(seed)
    return PTBXL(
        ecg_id=np.arange(1, n + 1),
        signals=rng.integers(-400, 400, size=(n, 12, 1000), dtype=np.int16),
        gain=np.full((n, 12), 1000, np.float32),
        baseline=np.zeros((n, 12), np.float32),
        labels=(rng.random((n, len(CLASSES))) < 0.3).astype(np.float32),
        folds=np.r_[np.resize(np.arange(1, 9), TRAIN_RECORDS), np.full(VAL_RECORDS, 9)].astype(np.int8),
        meta=rng.random((n, META_DIM), dtype=np.float32),
        raw_meta=np.full((n, 4), np.nan, np.float32),
        mean=np.zeros(12, np.float32),
        std=np.full(12, 0.23, np.float32),
        sampling_rate=100,
        dropped=0,
    )


def one_trial(spec: dict) -> dict:
    """Train one epoch of `spec` (TrainConfig fields) on the GPU; peak memory and samples/s."""
    import torch

    from raysearch.checkpoint import export_net
    from raysearch.models import ContrastiveNet
    from raysearch.train import TrainConfig, train_stage

    cfg = TrainConfig(**spec).resolved()
    teacher = None
    if cfg.stage == "student":  # a random teacher of the same embedding size costs what a real one does
        tcfg = replace(cfg, stage="teacher", leads="12", arch="inception", width=32, depth=6).resolved()
        teacher = export_net(ContrastiveNet(tcfg.model_config()), tcfg)
    data = random_ptbxl(cfg.seed)
    torch.cuda.init()
    free0, total = torch.cuda.mem_get_info()
    peak_used = [total - free0]

    def on_epoch(metrics, state):
        peak_used.append(total - torch.cuda.mem_get_info()[0])

    t0 = time.perf_counter()
    result = train_stage(cfg, data, teacher=teacher, on_epoch=on_epoch)
    h = result.history[-1]
    return {
        "stage": cfg.stage,
        "leads": cfg.leads,
        "arch": cfg.arch,
        "embedding_size": cfg.embedding_size,
        "batch_size": cfg.batch_size,
        "device_used_MiB": max(peak_used) / 2**20,
        "torch_peak_allocated_MiB": torch.cuda.max_memory_allocated() / 2**20,
        "torch_peak_reserved_MiB": torch.cuda.max_memory_reserved() / 2**20,
        "train_seconds": h["train_seconds"],
        "epoch_seconds": h["epoch_seconds"],
        "samples_per_s": h["samples_per_s"],
        "wall_seconds": time.perf_counter() - t0,
    }


def run_children(specs: list[dict]) -> list[dict]:
    """Run each spec in its own process, all at once; their results in order."""
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--child", json.dumps(s)], stdout=subprocess.PIPE, text=True
        )
        for s in specs
    ]
    out = []
    for p in procs:
        stdout, _ = p.communicate()
        if p.returncode:
            raise SystemExit(f"child failed ({p.returncode})")
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", default="search_spaces/default.yaml")
    p.add_argument("--out", default="gpu.json")
    p.add_argument("--pack", default="1,2,4,8", help="numbers of trials packed on the GPU")
    p.add_argument(
        "--memory",
        default="all",
        choices=("all", "max"),
        help="max: only the largest configuration per stage",
    )
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        print(json.dumps(one_trial(json.loads(a.child))))
        return

    import torch

    from raysearch.space import load_space

    space = load_space(a.space)
    const = {k: v for k, v in space["constants"].items() if k != "n_boot"}
    sizes = space["student"]["space"]["embedding_size"]["choice"]
    cpus = os.cpu_count() or 1
    base = {**const, "epochs": 1, "device": "cuda", "threads": cpus}
    teacher = {**base, **space["teacher"]["constants"], "stage": "teacher", "lr": 1e-3}
    student = {**base, **space["student"]["constants"], "stage": "student", "lr": 1e-3, "alpha": 1.0}
    specs = [{**teacher, "embedding_size": e} for e in (sizes if a.memory == "all" else [max(sizes)])]
    specs += [
        {**student, "stage": s, "leads": ld, "embedding_size": max(sizes)}
        for s in ("student", "baseline")
        for ld in (("6", "2") if a.memory == "all" else ("6",))
    ]
    report = {
        "gpu": torch.cuda.get_device_name(0),
        "gpu_total_MiB": torch.cuda.mem_get_info()[1] / 2**20,
        "cpus": cpus,
        "space": a.space,
        "date": time.strftime("%Y-%m-%d"),
        "memory": [],
        "packing": [],
    }
    for s in specs:
        r = run_children([s])[0]
        report["memory"].append(r)
        print(
            f"{r['stage']:8s} {r['leads']:>2s} leads emb {r['embedding_size']:3d}: "
            f"{r['device_used_MiB']:6.0f} MiB on the device (torch peak {r['torch_peak_allocated_MiB']:.0f} "
            f"MiB), {r['samples_per_s']:.0f} samples/s, epoch {r['epoch_seconds']:.1f} s",
            flush=True,
        )
    for n in [int(x) for x in a.pack.split(",")]:
        t0 = time.perf_counter()
        rs = run_children(
            [
                {**student, "leads": "4", "embedding_size": 128, "seed": i, "threads": max(1, cpus // n)}
                for i in range(n)
            ]
        )
        wall = time.perf_counter() - t0
        agg = sum(r["samples_per_s"] for r in rs)
        report["packing"].append(
            {
                "trials": n,
                "wall_seconds": wall,
                "aggregate_samples_per_s": agg,
                "median_epoch_seconds": float(np.median([r["epoch_seconds"] for r in rs])),
            }
        )
        print(
            f"{n} student trials packed: aggregate {agg:.0f} samples/s, "
            f"median epoch {report['packing'][-1]['median_epoch_seconds']:.1f} s",
            flush=True,
        )
    with open(a.out, "w") as fh:
        json.dump(report, fh, indent=1)


if __name__ == "__main__":
    main()
