"""GPU speed, memory and packing of trials at a search space's settings, eager against CUDA graphs.

    python bench/bench_gpu.py --space search_spaces/default.yaml --out gpu.json
    python bench/bench_gpu.py --parts speed,packing --out gpu.json      # a subset of the parts
    python bench/bench_gpu.py --make-subset /path/to/ptb-xl --subset bench/.data/ptbxl-subset.xz
    python bench/bench_gpu.py --parts real --subset bench/.data/ptbxl-subset.xz --out real.json

Every trial runs in a fresh process on a dataset of PTB-XL's size (random int16 samples: speed and
memory do not depend on the values), the bf16 matrix-product peak is measured in the same run.

- `speed`: teacher, student-4 (the teacher's forward per crop), student-4 reading cached teacher
  embeddings (`teacher_cache` 31) and baseline-4, each with `graphs` off and on, side by side. A
  process trains two trials of the same shapes one after the other (a reused Ray actor): samples/s
  and epoch seconds (validation included) of each trial's second epoch, setup seconds of the first
  and the second trial, FLOPs per sample and the fraction of the bf16 peak.
- `memory`: device memory of every stage the space trains (fresh process each), as `--gpus-per-trial`
  must leave room for.
- `packing`: 8 student-4 trials at once, as `--gpus-per-trial 0.125 --cpus-per-trial 2` places them,
  eager / graphed / graphed with cached embeddings: aggregate samples/s.
- `real`: a real PTB-XL subset (all of the validation fold, 2,500 training records; made from a
  PhysioNet folder by --make-subset, about 48 MB): validation macro-AUC after 3 epochs eager and
  graphed, for the teacher, the 4-lead baseline and the 4-lead student (four seeds).
- `noise`: the same for the teacher and the 4-lead baseline, per seed eager twice, eager with the
  learning rate nudged by one part in a million, and graphed: whether eager repeats itself, and
  how far a numerically invisible change moves the AUC after 3 epochs (the yardstick for the
  eager-graphed difference).
"""

import argparse
import json
import lzma
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

TRAIN_RECORDS, VAL_RECORDS = 17_084, 2_146  # PTB-XL 1.0.1 with a superclass: folds 1-8 and 9


def random_ptbxl(seed: int = 0):
    """A PTBXL of the real dataset's size and dtypes, random samples (timing/memory only)."""
    from raysearch.data.metadata import META_DIM
    from raysearch.data.ptbxl import PTBXL
    from raysearch.data.schema import CLASSES

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


# ----------------------------------------------------------------------------- real subset

SUBSET_FIELDS = ("ecg_id", "gain", "baseline", "labels", "folds", "meta", "raw_meta", "mean", "std")


def make_subset(root: str, out: str, train: int = 2500, seed: int = 0) -> None:
    """All validation records and `train` random training records of a PTB-XL folder, as one xz
    file (samples delta-coded along time: about 10 kB per record)."""
    import io

    from raysearch.data.ptbxl import load_ptbxl

    data = load_ptbxl(root, progress=False)
    rng = np.random.default_rng(seed)
    rows = np.sort(np.r_[rng.choice(data.split("train"), train, replace=False), data.split("val")])
    arrays = {k: np.asarray(getattr(data, k))[rows] for k in SUBSET_FIELDS if k not in ("mean", "std")}
    signals = np.asarray(data.signals[rows])
    arrays["delta"] = np.diff(signals, axis=2, prepend=np.int16(0)).astype(np.int16)
    buf = io.BytesIO()
    np.savez(buf, mean=data.mean, std=data.std, sampling_rate=data.sampling_rate, **arrays)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_bytes(lzma.compress(buf.getvalue(), preset=6))
    print(f"{len(rows)} records -> {out} ({Path(out).stat().st_size / 1e6:.1f} MB)")


def load_subset(path: str):
    import io

    from raysearch.data.ptbxl import PTBXL

    z = np.load(io.BytesIO(lzma.decompress(Path(path).read_bytes())))
    signals = np.cumsum(z["delta"], axis=2, dtype=np.int16)  # int16 wraps back exactly
    fields = {k: z[k] for k in SUBSET_FIELDS}
    return PTBXL(signals=signals, sampling_rate=int(z["sampling_rate"]), dropped=0, source=path, **fields)


# ---------------------------------------------------------------------------------- a child


def saved_teacher(cfg):
    from raysearch.training.checkpoint import export_net
    from raysearch.training.models import ContrastiveNet

    tcfg = replace(cfg, stage="teacher", leads="12", arch="inception", width=32, depth=6, teacher_cache=0)
    tcfg = tcfg.resolved()
    return export_net(ContrastiveNet(tcfg.model_config()), tcfg)


def one_child(spec: dict) -> dict:
    """Train `spec` (TrainConfig fields) `_trials` times in this process; per trial its history,
    setup seconds, the time to compute a teacher cache, and the device memory at its peak."""
    import torch

    from raysearch.training.config import TrainConfig
    from raysearch.training.embeddings import embed_training_records
    from raysearch.training.stage import train_stage

    spec = dict(spec)
    trials = spec.pop("_trials", 1)
    cfg = TrainConfig(**spec).resolved()
    data = random_ptbxl(cfg.seed)
    # a random teacher costs what a real one does
    teacher = saved_teacher(cfg) if cfg.stage == "student" else None
    torch.cuda.init()
    free0, total = torch.cuda.mem_get_info()
    peak_used = [total - free0]
    out = []
    for t in range(trials):
        trial = replace(cfg, seed=cfg.seed + t)
        cache, cache_seconds = None, None
        if cfg.teacher_cache:
            t0 = time.perf_counter()
            cache = embed_training_records(teacher, data, trial)
            cache_seconds = time.perf_counter() - t0
        result = train_stage(
            trial,
            data,
            teacher=teacher,
            cache=cache,
            on_epoch=lambda m, s: peak_used.append(total - torch.cuda.mem_get_info()[0]),
        )
        out.append({"history": result.history, "cache_seconds": cache_seconds})
    return {
        "trials": out,
        "device_used_MiB": max(peak_used) / 2**20,
        "torch_peak_allocated_MiB": torch.cuda.max_memory_allocated() / 2**20,
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


# --------------------------------------------------------------------------------- figures


def matmul_peak_tflops(n: int = 8192, reps: int = 30) -> float:
    """Median bf16 TFLOP/s of n x n matrix products on the GPU (the peak a fraction refers to)."""
    import torch

    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    rates = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        a @ b
        end.record()
        end.synchronize()
        rates.append(2 * n**3 / (start.elapsed_time(end) / 1e3) / 1e12)
    return float(np.median(rates[3:]))


def flops_per_sample(spec: dict) -> float:
    """Forward + backward FLOPs of one training crop, plus the frozen teacher's forward for a
    student without cached embeddings (counted on the CPU with torch's FlopCounterMode)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from raysearch.training.checkpoint import import_net
    from raysearch.training.config import TrainConfig
    from raysearch.training.models import ContrastiveNet

    cfg = TrainConfig(**{k: v for k, v in spec.items() if not k.startswith("_")}).resolved()
    length = int(cfg.crop_seconds * 100)
    net = ContrastiveNet(cfg.model_config())
    meta = torch.randn(8, net.cfg.meta_dim)
    with FlopCounterMode(display=False) as counter:
        _, logits = net(torch.randn(8, len(cfg.lead_indices), length), meta)
        logits.sum().backward()
        if cfg.stage == "student" and not cfg.teacher_cache:
            with torch.no_grad():
                import_net(saved_teacher(cfg), "teacher").eval().embed(torch.randn(8, 12, length), meta)
    return counter.get_total_flops() / 8


def speed_row(name: str, spec: dict, r: dict, flops: float, peak: float) -> dict:
    first, second = r["trials"][0]["history"], r["trials"][-1]["history"]
    sps = first[-1]["samples_per_s"]
    return {
        "trial": name,
        "graphs": spec["graphs"],
        "samples_per_s": sps,
        "second_trial_samples_per_s": second[-1]["samples_per_s"],
        "epoch_seconds": first[-1]["epoch_seconds"],
        "train_seconds": first[-1]["train_seconds"],
        "setup_seconds_first": first[0]["setup_seconds"],
        "setup_seconds_later": second[0]["setup_seconds"],
        "cache_seconds": r["trials"][0]["cache_seconds"],
        "gflop_per_sample": flops / 1e9,
        "tflops": flops * sps / 1e12,
        "fraction_of_bf16_peak": flops * sps / 1e12 / peak,
        "device_used_MiB": r["device_used_MiB"],
    }


def real_part(
    subset: str, base: dict, runs=("off", "on"), stages=("teacher", "baseline", "student")
) -> list[dict]:
    """Validation macro-AUC after 3 epochs on the real subset, four seeds, one run per entry of
    `runs` (graphs off / on; ("off", "off", "on") also measures eager against itself)."""
    from raysearch.training.config import TrainConfig
    from raysearch.training.stage import train_stage

    data = load_subset(subset)
    rows = []
    teacher = None
    for stage, leads in (("teacher", "12"), ("baseline", "4"), ("student", "4")):
        if stage not in stages:
            continue
        for seed in (0, 1, 2, 3):
            for graphs in runs:
                extra = {"arch": "inception", "width": 32, "depth": 6} if stage == "teacher" else {}
                cfg = TrainConfig(**{**base, **extra, "stage": stage, "leads": leads, "epochs": 3})
                # "nudged": eager with the learning rate moved by one part in a million, a change no
                # metric should notice: how far a numerically invisible change moves the result
                lr = 3e-3 * (1 + 1e-6) if graphs == "nudged" else 3e-3
                cfg = replace(
                    cfg, seed=seed, graphs="off" if graphs == "nudged" else graphs, lr=lr, alpha=1.0
                )
                result = train_stage(cfg, data, teacher=teacher if stage == "student" else None)
                rows.append(
                    {
                        "stage": stage,
                        "leads": leads,
                        "seed": seed,
                        "graphs": graphs,
                        "val_macro_auc": [h["val_macro_auc"] for h in result.history],
                        "epoch_seconds": [h["epoch_seconds"] for h in result.history],
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
                if stage == "teacher" and seed == 0 and graphs == "on":
                    teacher = result.export()
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", default="search_spaces/default.yaml")
    p.add_argument("--out", default="gpu.json")
    p.add_argument("--parts", default="speed,memory,packing", help="speed, memory, packing, real, noise")
    p.add_argument("--pack", type=int, default=8, help="trials packed on the GPU")
    p.add_argument("--subset", help="the real subset file (--make-subset writes it, part `real` reads it)")
    p.add_argument("--make-subset", metavar="PTBXL_DIR", help="write --subset from a PTB-XL folder and exit")
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        print(json.dumps(one_child(json.loads(a.child))))
        return
    if a.make_subset:
        make_subset(a.make_subset, a.subset)
        return

    import torch

    from raysearch.searching.space import load_space
    from raysearch.training.config import TrainConfig

    space = load_space(a.space)
    const = {k: v for k, v in space["constants"].items() if k != "n_boot"}
    sizes = space["student"]["space"]["embedding_size"]["choice"]
    cpus = os.cpu_count() or 1
    base = {**const, "epochs": 2, "device": "cuda", "threads": cpus, "n_boot": 10}
    teacher = {**base, **space["teacher"]["constants"], "stage": "teacher", "lr": 1e-3}
    student = {**base, **space["student"]["constants"], "stage": "student", "lr": 1e-3, "alpha": 1.0}
    parts = a.parts.split(",")
    report = {
        "gpu": torch.cuda.get_device_name(0),
        "cpus": cpus,
        "space": a.space,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "bf16_peak_tflops": matmul_peak_tflops(),
    }
    peak = report["bf16_peak_tflops"]
    print(f"{report['gpu']}: bf16 matrix product {peak:.0f} TFLOP/s", flush=True)

    def save():
        Path(a.out).write_text(json.dumps(report, indent=1))

    if "speed" in parts:
        report["speed"] = []
        trials = {
            "teacher": {**teacher, "embedding_size": 128},
            "student-4": {**student, "leads": "4", "embedding_size": 128},
            "student-4 cached": {**student, "leads": "4", "embedding_size": 128, "teacher_cache": 31},
            "baseline-4": {**student, "stage": "baseline", "leads": "4", "embedding_size": 128},
        }
        for name, spec in trials.items():
            flops = flops_per_sample(spec)
            for graphs in ("off", "on"):
                s = {**spec, "graphs": graphs, "_trials": 2}
                row = speed_row(name, s, run_children([s])[0], flops, peak)
                report["speed"].append(row)
                save()
                print(
                    f"{name:17s} graphs {graphs:3s}: {row['samples_per_s']:7.0f} samples/s "
                    f"({row['fraction_of_bf16_peak']:.2%} of bf16 peak), epoch {row['epoch_seconds']:.2f} s, "
                    f"setup {row['setup_seconds_first']:.2f} s then {row['setup_seconds_later']:.2f} s",
                    flush=True,
                )
    if "memory" in parts:
        report["memory"] = []
        specs = [{**teacher, "embedding_size": e} for e in sizes]
        specs += [
            {**student, "stage": s, "leads": "6", "embedding_size": max(sizes)}
            for s in ("student", "baseline")
        ]
        for spec in specs:
            r = run_children([{**spec, "epochs": 1}])[0]
            h = r["trials"][0]["history"][-1]
            cfg = TrainConfig(**spec).resolved()
            row = {"stage": cfg.stage, "leads": cfg.leads, "embedding_size": cfg.embedding_size}
            report["memory"].append({**row, **r, "trials": None})
            save()
            print(
                f"{cfg.stage:8s} {cfg.leads:>2s} leads emb {cfg.embedding_size:3d}: "
                f"{r['device_used_MiB']:6.0f} MiB on the device (torch peak "
                f"{r['torch_peak_allocated_MiB']:.0f} MiB), {h['samples_per_s']:.0f} samples/s",
                flush=True,
            )
    if "packing" in parts:
        report["packing"] = []
        s4 = {**student, "leads": "4", "embedding_size": 128, "threads": max(1, cpus // a.pack)}
        for label, extra in (("eager", {"graphs": "off"}), ("graphed", {"graphs": "on"})) + (
            ("graphed, cached embeddings", {"graphs": "on", "teacher_cache": 31}),
        ):
            t0 = time.perf_counter()
            rs = run_children([{**s4, **extra, "seed": i} for i in range(a.pack)])
            last = [r["trials"][0]["history"][-1] for r in rs]
            row = {
                "trials": a.pack,
                "mode": label,
                "wall_seconds": time.perf_counter() - t0,
                "aggregate_samples_per_s": sum(h["samples_per_s"] for h in last),
                "median_epoch_seconds": float(np.median([h["epoch_seconds"] for h in last])),
            }
            report["packing"].append(row)
            save()
            print(
                f"{a.pack} student-4 trials packed, {label}: aggregate {row['aggregate_samples_per_s']:.0f} "
                f"samples/s, median epoch {row['median_epoch_seconds']:.2f} s",
                flush=True,
            )
    real_base = {**{k: v for k, v in base.items() if k != "epochs"}, **space["student"]["constants"]}
    if "real" in parts:
        report["real"] = real_part(a.subset, real_base)
        save()
    if "noise" in parts:  # how far two eager runs of one seed land apart, beside a graphed one
        report["noise"] = real_part(
            a.subset, real_base, ("off", "off", "nudged", "on"), ("teacher", "baseline")
        )
        save()
    save()


if __name__ == "__main__":
    main()
