"""How closely `predict` and the exported files reproduce a trained run, on real records.

    python bench/agree_predict.py runs/x/best/student-2 --data ptb-xl --folds 10

For one model folder (a run with predictions_test.npz) and a PTB-XL folder, prints the largest
absolute difference in probability between:
  1. `predict` through PyTorch and the run's own predictions_test.npz (same records, by ecg_id);
  2. the ONNX and TorchScript exports and PyTorch in fp32 (what the exports compute);
  3. PyTorch in the training precision and in fp32;
  4. the records resampled to 500 Hz (made from the real ones with scipy's resample_poly, written
     as WFDB) and the originals, both through PyTorch.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import wfdb
from scipy.signal import resample_poly

from raysearch.data.database import read_tables
from raysearch.deploy.export import export_model
from raysearch.deploy.predict import PredictOptions, predict_records


def table(result: dict) -> pd.DataFrame:
    assert not result["errors"], result["errors"][:3]
    return pd.DataFrame(result["rows"]).set_index("record")[result["classes"]]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a model folder with predictions_test.npz")
    p.add_argument("--data", required=True, help="the PTB-XL folder the run was trained on")
    p.add_argument("--folds", default="10", help="folds to predict (10: the run's test fold)")
    a = p.parse_args()
    model, data = Path(a.model), Path(a.data)

    own = predict_records(PredictOptions(model=str(model), data=str(data), folds=a.folds), progress=False)
    saved = np.load(model / "predictions_test.npz")
    by_id = pd.DataFrame(own["rows"]).set_index("ecg_id").loc[saved["ecg_id"], own["classes"]]
    print(f"records: {len(own['rows'])}; of them in predictions_test.npz: {len(saved['ecg_id'])}")
    print(f"1. predict vs predictions_test.npz: {np.abs(by_id.to_numpy() - saved['y_score']).max():.2e}")

    fp32 = table(
        predict_records(
            PredictOptions(model=str(model), data=str(data), folds=a.folds, precision="fp32"), False
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, name in (("onnx", "m.onnx"), ("torchscript", "m.pt")):
            file = export_model(model, fmt, Path(tmp) / name)
            got = table(
                predict_records(PredictOptions(model=str(file), data=str(data), folds=a.folds), False)
            )
            print(f"2. {fmt} vs PyTorch fp32: {np.abs((got - fp32).to_numpy()).max():.2e}")
        print(f"3. training precision vs fp32: {np.abs((table(own) - fp32).to_numpy()).max():.2e}")

        db, _ = read_tables(data)
        db = db[db["strat_fold"].isin([int(f) for f in a.folds.split(",")])]
        slow, fast, rows = [], [], ["record,age,sex,height,weight"]
        for r in db.itertuples():
            src = wfdb.rdrecord(str(data / r.filename_lr))
            name = f"r{r.ecg_id}"
            signal = resample_poly(src.p_signal, 5, 1, axis=0)
            wfdb.wrsamp(
                name, 500, src.units, src.sig_name, signal, fmt=["16"] * len(src.sig_name), write_dir=tmp
            )
            slow.append(str(data / r.filename_lr))
            fast.append(str(Path(tmp) / name))
            values = ["" if pd.isna(v) else str(v) for v in (r.age, r.sex, r.height, r.weight)]
            rows += [",".join([n, *values]) for n in (name, Path(r.filename_lr).name)]
        (Path(tmp) / "meta.csv").write_text("\n".join(rows) + "\n")
        got = [
            table(
                predict_records(
                    PredictOptions(model=str(model), records=recs, metadata=str(Path(tmp) / "meta.csv")),
                    False,
                )
            )
            for recs in (slow, fast)
        ]
        diff = np.abs(got[0].to_numpy() - got[1].to_numpy())
        print(f"4. 500 Hz vs 100 Hz records: max {diff.max():.4f}, median {np.median(diff):.5f}")


if __name__ == "__main__":
    main()
