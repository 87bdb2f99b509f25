"""Cached teacher embeddings (`teacher_cache`) against the teacher's forward on every crop: what a
student trial costs and what it learns, on real data, at a search space's settings.

    python bench/bench_cache.py --data /path/to/ptb-xl --space search_spaces/cpu.yaml --leads 4 \
        --seeds 0,1 --positions 31 --out cache.json

Trains the space's teacher once (its constants, lr at the middle of its range), computes its
embeddings at `--positions` crop starts per training record (timed), then trains the student of
`--leads` with each seed twice, reading the teacher's forward and reading the cache (alpha 1.0,
cosine, the middle of the lr range), and the baseline once per seed for the epoch-time scale.
Reports the median training seconds per epoch and the validation macro-AUC after the last epoch.
"""

import argparse
import json
import statistics
import time
from dataclasses import replace

from raysearch.data.dataset import DataOptions, open_dataset
from raysearch.searching.space import load_space, stage_space
from raysearch.training.config import TrainConfig
from raysearch.training.embeddings import embed_training_records
from raysearch.training.stage import train_stage


def middle(dist: dict) -> float:
    lo, hi = dist["loguniform"]
    return (lo * hi) ** 0.5


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--space", default="search_spaces/cpu.yaml")
    p.add_argument("--leads", default="4")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--positions", type=int, default=31)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", default="cache.json")
    a = p.parse_args()

    space = load_space(a.space)
    data = open_dataset(DataOptions(data=a.data))
    t_const, t_dists, _ = stage_space(space, "teacher")
    s_const, s_dists, _ = stage_space(space, "student", a.leads)
    size = s_dists["embedding_size"]["choice"][0] if "embedding_size" in s_dists else 128
    common = {"threads": a.threads, "n_boot": 10, "embedding_size": size}
    report = {"data": a.data, "space": a.space, "leads": a.leads, "positions": a.positions, "runs": []}

    def save():
        with open(a.out, "w") as fh:
            json.dump(report, fh, indent=1)

    def run(cfg, **kw):
        r = train_stage(cfg, data, **kw)
        row = {
            "stage": cfg.stage,
            "seed": cfg.seed,
            "teacher_cache": cfg.teacher_cache,
            "train_seconds_per_epoch": statistics.median(h["train_seconds"] for h in r.history),
            "val_macro_auc": r.history[-1]["val_macro_auc"],
            "val_macro_auc_per_epoch": [h["val_macro_auc"] for h in r.history],
        }
        report["runs"].append(row)
        save()
        print(json.dumps({k: v for k, v in row.items() if k != "val_macro_auc_per_epoch"}), flush=True)
        return r

    t0 = time.perf_counter()
    lr = middle(t_dists["lr"]) if "lr" in t_dists else t_const["lr"]
    teacher = run(TrainConfig(**{**t_const, **common, "stage": "teacher", "lr": lr})).export()
    report["teacher_seconds"] = time.perf_counter() - t0
    student = TrainConfig(
        **{
            **s_const,
            **common,
            "stage": "student",
            "leads": a.leads,
            "lr": middle(s_dists["lr"]),
            "alpha": 1.0,
        }
    )
    t0 = time.perf_counter()
    cache = embed_training_records(teacher, data, replace(student, teacher_cache=a.positions))
    report["cache_seconds"] = time.perf_counter() - t0
    report["cache_MB"] = cache.embeddings.nbytes / 1e6
    print(f"cache: {report['cache_seconds']:.1f} s, {report['cache_MB']:.0f} MB", flush=True)
    save()
    for seed in [int(s) for s in a.seeds.split(",")]:
        run(replace(student, seed=seed), teacher=teacher)
        run(replace(student, seed=seed, teacher_cache=a.positions), teacher=teacher, cache=cache)
        run(replace(student, seed=seed, stage="baseline"))


if __name__ == "__main__":
    main()
