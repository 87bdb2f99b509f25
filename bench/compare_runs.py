"""Paired bootstrap of two runs' predictions on the same records (e.g. student vs baseline).

    python bench/compare_runs.py RUN_A RUN_B [--n-boot 1000]

Reads predictions_{val,test}.npz of both RUN_DIRs (written by `raysearch train` or bench_train.py)
and prints the macro-AUC gain A - B with its paired-bootstrap 95% CI and p-value. The bootstrap
resamples records only: it says nothing of the variation between training seeds.
"""

import argparse
import json

import numpy as np

from raysearch.reporting.statistics import paired_bootstrap


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("run_a")
    p.add_argument("run_b")
    p.add_argument("--n-boot", type=int, default=1000)
    a = p.parse_args()
    out = {}
    for split in ("val", "test"):
        x = np.load(f"{a.run_a}/predictions_{split}.npz")
        y = np.load(f"{a.run_b}/predictions_{split}.npz")
        if not np.array_equal(x["ecg_id"], y["ecg_id"]):
            raise SystemExit(f"{split}: the two runs scored different records")
        out[split] = paired_bootstrap(x["y_true"], x["y_score"], y["y_score"], n_boot=a.n_boot, seed=0)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
