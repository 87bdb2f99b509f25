"""Synthetic PTB-XL: the real layout, read by the real reader."""

import csv

import numpy as np
import pytest
import wfdb

from raysearch.data.ptbxl import load_ptbxl, summary
from raysearch.data.schema import CLASSES, LEADS
from raysearch.data.synthetic import DB_HEADER, write_synthetic


def test_layout_and_reader(synthetic_ptbxl):
    with open(synthetic_ptbxl / "ptbxl_database.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == DB_HEADER
        rows = list(reader)
    record = wfdb.rdrecord(str(synthetic_ptbxl / rows[0]["filename_lr"]))
    assert record.fs == 100 and record.sig_len == 1000 and record.sig_name == [n.upper() for n in LEADS]
    ds = load_ptbxl(synthetic_ptbxl, progress=False)
    info = summary(ds)
    assert ds.synthetic and info["synthetic"]  # marked as such wherever it is read
    assert info["records"] + info["dropped"] == len(rows) == 500
    assert all(info["classes"][c] > 10 for c in CLASSES)
    assert all(info["folds"][str(f)] > 30 for f in range(1, 11))
    # realistic missingness: height ~68% missing, weight ~57%
    assert 0.55 < np.isnan(ds.raw_meta[:, 2]).mean() < 0.8
    assert 0.45 < np.isnan(ds.raw_meta[:, 3]).mean() < 0.7


def test_classes_change_the_waveform(synthetic_ptbxl):
    ds = load_ptbxl(synthetic_ptbxl, progress=False)
    x = ds.standardized(np.arange(len(ds)))
    norm_only = (ds.labels[:, 0] == 1) & (ds.labels.sum(axis=1) == 1)
    hyp = ds.labels[:, CLASSES.index("HYP")] == 1
    v5 = LEADS.index("V5")
    peak = np.abs(x[:, v5]).max(axis=1)
    assert peak[hyp].mean() > 1.3 * peak[norm_only].mean()  # LVH: tall R in V5


def test_same_seed_same_data(tmp_path):
    from raysearch.data.synthetic import write_synthetic

    a = write_synthetic(tmp_path / "a", records=30, seed=3, workers=1)
    b = write_synthetic(tmp_path / "b", records=30, seed=3, workers=2)
    assert (a / "ptbxl_database.csv").read_bytes() == (b / "ptbxl_database.csv").read_bytes()
    assert (a / "records100/00000/00007_lr.dat").read_bytes() == (
        b / "records100/00000/00007_lr.dat"
    ).read_bytes()


def test_synth_never_writes_over_a_real_dataset(real_ptbxl, tmp_path):
    import shutil

    from raysearch import UserError

    real = tmp_path / "real"
    shutil.copytree(real_ptbxl, real)
    before = (real / "ptbxl_database.csv").read_bytes()
    with pytest.raises(UserError, match="holds files that are not a synthetic set raysearch wrote"):
        write_synthetic(real, records=20)
    assert (real / "ptbxl_database.csv").read_bytes() == before
    again = write_synthetic(tmp_path / "synth", records=20)
    write_synthetic(again, records=20, seed=1)  # an earlier synthetic set may be written again
