"""Tune's per-trial overhead against the trials' own work, and the object store with 1 vs N trials.

    python bench/bench_search.py overhead --data synthetic --trials 64      # the README search
    python bench/bench_search.py objects --data synthetic --trials 1 16     # teacher shared once

`overhead` runs one search (`python -m raysearch ... --space search_spaces/tiny.yaml`) and reads
every trial's result.json: a trial's work is the time its trainable spent (Tune's time_total_s);
the overhead per trial is (stage wall time x concurrency / trials) - mean work, i.e. the time a
slot was busy with anything but training (actor start/reuse, scheduling, checkpoint upload,
searcher). `objects` runs the student stage with each trial count and prints Ray's object-store
accounting (summary.json: object_store).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_search(data: str, trials: int, storage: Path, name: str, extra: list[str]) -> tuple[float, dict]:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    cmd = [
        sys.executable,
        "-m",
        "raysearch",
        "--leads",
        "4",
        "--trials",
        str(trials),
        "--space",
        "search_spaces/tiny.yaml",
        "--data",
        data,
        "--storage",
        str(storage),
        "--name",
        name,
        *extra,
    ]
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    return wall, json.loads((storage / name / "summary.json").read_text())


def stage_timing(run_dir: Path, arms: tuple[str, ...]) -> dict:
    """Per-trial work (Tune's time_total_s) and the wall time from the first start to the last end
    of the arms' trials (RUN_DIR/trials/ARM-ID/result.json; the arms run at the same time)."""
    work, starts, ends = [], [], []
    for result in [r for arm in arms for r in (run_dir / "trials").glob(f"{arm}-*/result.json")]:
        rows = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        if not rows:
            continue
        last = rows[-1]
        work.append(last["time_total_s"])
        starts.append(rows[0]["timestamp"] - rows[0]["time_this_iter_s"])
        ends.append(last["timestamp"])
    return {
        "trials": len(work),
        "work_median_s": statistics.median(work),
        "work_mean_s": statistics.mean(work),
        "wall_s": max(ends) - min(starts),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=("overhead", "objects"))
    p.add_argument("--data", default="synthetic")
    p.add_argument("--trials", type=int, nargs="+", default=[64])
    p.add_argument("--concurrency", type=int, default=2)
    a = p.parse_args()
    storage = Path(tempfile.mkdtemp(prefix="rsbench"))
    common = [
        "--num-cpus",
        str(a.concurrency),
        "--max-concurrent",
        str(a.concurrency),
        "--teacher-trials",
        "1",
    ]
    out = {
        "command": " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    if a.what == "overhead":
        wall, summary = run_search(a.data, a.trials[0], storage, "overhead", common)
        out["search_wall_s"] = wall
        arms = ("student-4", "baseline-4")  # one experiment: their trials share the slots
        t = stage_timing(storage / "overhead", arms)
        t["overhead_per_trial_s"] = t["wall_s"] * a.concurrency / t["trials"] - t["work_mean_s"]
        t["overhead_fraction"] = t["overhead_per_trial_s"] / (t["overhead_per_trial_s"] + t["work_mean_s"])
        t["asha"] = {
            arm: {k: summary["leads"]["4"][arm.split("-")[0]][k] for k in ("finished", "stopped_early")}
            for arm in arms
        }
        out["+".join(arms)] = t
    else:
        for n in a.trials:
            wall, summary = run_search(a.data, n, storage, f"objects{n}", common + ["--no-baseline"])
            teacher = next(iter((storage / f"objects{n}" / "teachers").glob("*/model.pt")))
            out[f"trials_{n}"] = {
                "object_store": summary["object_store"],
                "teacher_model_pt_bytes": teacher.stat().st_size,
                "wall_s": wall,
            }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
