"""The PTB-XL reader against independent computation from the csv and WFDB files themselves."""

import ast
import csv
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import wfdb

from raysearch import UserError
from raysearch.data import cache as data_mod
from raysearch.data.metadata import encode_metadata
from raysearch.data.ptbxl import load_ptbxl, require_answerable, summary
from raysearch.data.schema import CLASSES, LEADS


def _independent_labels(root: Path) -> dict[int, set[str]]:
    """ecg_id -> superclasses, computed with the csv module only (no pandas, no raysearch)."""
    with open(root / "scp_statements.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    code_col = next(iter(rows[0]))  # the unnamed first column holds the code
    classes = {r[code_col]: r["diagnostic_class"] for r in rows if r["diagnostic"] in ("1", "1.0")}
    out = {}
    with open(root / "ptbxl_database.csv", newline="") as fh:
        for r in csv.DictReader(fh):
            out[int(r["ecg_id"])] = {classes[c] for c in ast.literal_eval(r["scp_codes"]) if c in classes}
    return out


def _copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def test_labels_and_counts_match_independent_computation(real_ptbxl):
    ds = load_ptbxl(real_ptbxl, progress=False)
    expected = _independent_labels(real_ptbxl)
    kept = {k: v for k, v in expected.items() if v}
    assert len(ds) == len(kept)
    assert ds.dropped == len(expected) - len(kept) > 0
    for row, ecg_id in enumerate(ds.ecg_id):
        assert {CLASSES[i] for i in np.flatnonzero(ds.labels[row])} == kept[int(ecg_id)]
    info = summary(ds)
    counts = Counter(c for v in kept.values() for c in v)
    assert info["classes"] == {c: counts[c] for c in CLASSES}


def test_fold_sizes_and_splits(real_ptbxl):
    ds = load_ptbxl(real_ptbxl, progress=False)
    labels = _independent_labels(real_ptbxl)
    with open(real_ptbxl / "ptbxl_database.csv", newline="") as fh:
        folds = Counter(int(r["strat_fold"]) for r in csv.DictReader(fh) if labels[int(r["ecg_id"])])
    assert summary(ds)["folds"] == {str(f): folds[f] for f in range(1, 11)}
    assert set(ds.folds[ds.split("train")]) <= set(range(1, 9))
    assert set(ds.folds[ds.split("val")]) == {9} and set(ds.folds[ds.split("test")]) == {10}
    assert len(ds.split("train")) + len(ds.split("val")) + len(ds.split("test")) == len(ds)


def test_lead_order_and_a_known_sample(real_ptbxl):
    ds = load_ptbxl(real_ptbxl, progress=False)
    row = 7
    ecg_id = int(ds.ecg_id[row])
    stem = real_ptbxl / "records100" / "00000" / f"{ecg_id:05d}_lr"
    header = stem.with_suffix(".hea").read_text().splitlines()
    assert [line.split()[-1] for line in header[1:13]] == [n.upper() for n in LEADS]
    raw = np.fromfile(stem.with_suffix(".dat"), dtype="<i2").reshape(1000, 12)  # format 16, interleaved
    assert np.array_equal(ds.signals[row], raw.T)
    gain = float(header[1].split()[2].split("(")[0].split("/")[0])
    lead = LEADS.index("V2")
    got = ds.standardized(np.array([row]), (lead,))[0, 0, 123]
    want = (raw[123, lead] / gain - ds.mean[lead]) / ds.std[lead]
    assert got == pytest.approx(want, rel=1e-5)


def test_standardization_uses_training_folds_only(real_ptbxl):
    ds = load_ptbxl(real_ptbxl, progress=False)
    train = ds.split("train")
    mv = ds.signals[train].astype(np.float64) / 1000.0
    assert np.allclose(ds.mean, mv.mean(axis=(0, 2)), atol=1e-6)
    assert np.allclose(ds.std, mv.std(axis=(0, 2)), rtol=1e-4)
    everything = ds.signals[:].astype(np.float64) / 1000.0
    assert not np.allclose(ds.std, everything.std(axis=(0, 2)), rtol=1e-4)


def test_metadata_matches_csv(real_ptbxl):
    ds = load_ptbxl(real_ptbxl, progress=False)
    with open(real_ptbxl / "ptbxl_database.csv", newline="") as fh:
        rows = {int(r["ecg_id"]): r for r in csv.DictReader(fh)}
    raw = np.array(
        [[float(rows[int(e)][k] or "nan") for k in ("age", "sex", "height", "weight")] for e in ds.ecg_id]
    )
    assert np.allclose(ds.raw_meta, raw, equal_nan=True)
    assert np.allclose(ds.meta, encode_metadata(*raw.T))
    assert np.isnan(raw[:, 2]).mean() > 0.5  # height is mostly missing in PTB-XL


def test_cache_is_reused_and_never_stale(real_ptbxl, tmp_path, monkeypatch):
    root = _copy(real_ptbxl, tmp_path / "ptbxl")
    first = load_ptbxl(root, progress=False)
    assert isinstance(first.signals, np.memmap)

    def boom(*a, **k):
        raise AssertionError("converted again although nothing changed")

    monkeypatch.setattr(data_mod, "_convert", boom)
    again = load_ptbxl(root, progress=False)
    assert np.array_equal(again.signals, first.signals)
    monkeypatch.undo()

    stem = root / "records100" / "00000" / f"{int(first.ecg_id[0]):05d}_lr"
    raw = np.fromfile(stem.with_suffix(".dat"), dtype="<i2")
    record = wfdb.rdrecord(str(stem), physical=False)
    record.d_signal = record.d_signal + 7  # same size, new content, its header rewritten to match
    record.checksum, record.init_value = record.calc_checksum(), record.d_signal[0].tolist()
    record.wrsamp(write_dir=str(stem.parent))
    changed = load_ptbxl(root, progress=False)
    assert np.array_equal(changed.signals[0], (raw + 7).reshape(1000, 12).T)


def test_release_103_ages_and_fewer_rows(real_ptbxl, tmp_path):
    root = _copy(real_ptbxl, tmp_path / "ptbxl103")
    import pandas as pd

    db = pd.read_csv(root / "ptbxl_database.csv")
    db = db.iloc[5:].copy()  # 1.0.3 dropped some rows
    target = db.index[0]
    db.loc[target, "age"] = 300  # 1.0.3 writes ages over 89 as 300
    db.to_csv(root / "ptbxl_database.csv", index=False)
    ds = load_ptbxl(root, progress=False)
    row = int(np.flatnonzero(ds.ecg_id == db.loc[target, "ecg_id"])[0])
    assert np.allclose(ds.meta[row], encode_metadata([95.0], *[[v] for v in ds.raw_meta[row, 1:]])[0])
    assert ds.ecg_id.min() == db["ecg_id"].min()


def _expect_error(root, *fragments, **kwargs):
    with pytest.raises(UserError) as err:
        load_ptbxl(root, progress=False, **kwargs)
    for f in fragments:
        assert f in str(err.value), str(err.value)
    return str(err.value)


def test_missing_csv_and_column(real_ptbxl, tmp_path):
    root = _copy(real_ptbxl, tmp_path / "a")
    (root / "scp_statements.csv").unlink()
    _expect_error(root, "scp_statements.csv: missing")
    root = _copy(real_ptbxl, tmp_path / "b")
    text = (root / "ptbxl_database.csv").read_text().replace("strat_fold", "fold", 1)
    (root / "ptbxl_database.csv").write_text(text)
    _expect_error(root, "missing column(s) strat_fold")
    _expect_error(tmp_path, "ptbxl_database.csv: missing", "not a PTB-XL folder")
    _expect_error(real_ptbxl, "records500: missing", sampling_rate=500)


def test_csv_values_checked_where_they_enter(real_ptbxl, tmp_path):
    import pandas as pd

    for column, value, message in (
        ("scp_codes", "['NORM', 'SR']", "scp_codes \"['NORM', 'SR']\"; expected a mapping of SCP codes"),
        ("scp_codes", "{'NORM': 'high'}", "expected a mapping of SCP codes to likelihoods"),
        ("scp_codes", "{'NORM': 100.0", "expected a mapping of SCP codes"),
        ("strat_fold", 3.5, "strat_fold of 1 record(s) not a whole number 1..10"),
        ("strat_fold", 11, "not a whole number 1..10"),
    ):
        root = _copy(real_ptbxl, tmp_path / f"{column}{len(list(tmp_path.iterdir()))}")
        db = pd.read_csv(root / "ptbxl_database.csv")
        db[column] = db[column].astype(object)
        db.loc[0, column] = value
        db.to_csv(root / "ptbxl_database.csv", index=False)
        _expect_error(root, "ptbxl_database.csv", message)
    root = _copy(real_ptbxl, tmp_path / "dir")
    (root / "scp_statements.csv").write_bytes(bytes(range(256)) * 8)  # binary, not text
    _expect_error(root, "scp_statements.csv: not a readable csv")


def test_bad_records_listed_at_once_and_skippable(real_ptbxl, tmp_path):
    root = _copy(real_ptbxl, tmp_path / "bad")
    ok = load_ptbxl(real_ptbxl, progress=False)
    ids = [int(i) for i in ok.ecg_id[:5]]
    stems = [root / "records100" / "00000" / f"{i:05d}_lr" for i in ids]
    stems[0].with_suffix(".dat").unlink()  # missing record file
    dat = stems[1].with_suffix(".dat")
    dat.write_bytes(dat.read_bytes()[:5000])  # truncated
    hea = stems[2].with_suffix(".hea")
    hea.write_text(hea.read_text().replace(" 12 100 1000", " 12 100 999", 1))  # length disagrees
    hea = stems[3].with_suffix(".hea")
    hea.write_text(hea.read_text().replace(" 12 100 1000", " 12 250 1000", 1))  # rate disagrees
    dat = stems[4].with_suffix(".dat")
    body = bytearray(dat.read_bytes())
    body[100:110] = bytes(10)  # same size, other samples: only the header's checksums tell
    dat.write_bytes(bytes(body))
    msg = _expect_error(
        root,
        "5 bad record(s)",
        "--skip-bad-records",
        f"{ids[0]:05d}_lr.dat: missing",
        f"{ids[1]:05d}_lr.dat: 5000 bytes, expected 24000 (truncated)",
        "999 samples at 100 Hz, expected 1000 at 100 Hz",
        "1000 samples at 250 Hz",
        f"{ids[4]:05d}_lr.dat: samples of",
        f"do not match the checksums in records100/00000/{ids[4]:05d}_lr.hea",
    )
    assert msg.count("\n") == 5  # the summary line, then one line per bad record
    ds = load_ptbxl(root, progress=False, skip_bad_records=True)
    assert len(ds) == len(ok) - 5 and len(ds.skipped) == 5
    assert not set(ids) & set(ds.ecg_id.tolist())


def _rewrite(stem: Path, change) -> None:
    """Rewrite a WFDB record with `change(d_signal)` applied, its header's checksums to match."""
    record = wfdb.rdrecord(str(stem), physical=False)
    record.d_signal = change(record.d_signal.copy())
    record.checksum, record.init_value = record.calc_checksum(), record.d_signal[0].tolist()
    record.wrsamp(write_dir=str(stem.parent))


def test_wfdb_missing_samples_are_never_read_as_voltage(real_ptbxl, tmp_path):
    root = _copy(real_ptbxl, tmp_path / "missing")
    ok = load_ptbxl(real_ptbxl, progress=False)
    train = ok.split("train")
    gone, few = int(ok.ecg_id[train[0]]), int(ok.ecg_id[train[1]])
    stem = root / "records100" / "00000"

    def all_missing(d):
        d[:] = data_mod.WFDB_MISSING
        return d

    def some_missing(d):
        d[100:120, 3] = data_mod.WFDB_MISSING  # 2% of aVR
        return d

    _rewrite(stem / f"{gone:05d}_lr", all_missing)
    _rewrite(stem / f"{few:05d}_lr", some_missing)
    msg = _expect_error(root, "1 bad record(s)", f"{gone:05d}_lr.dat: samples missing (WFDB's missing value")
    assert "I 100%" in msg and "expected at most 5% of a lead" in msg
    ds = load_ptbxl(root, progress=False, skip_bad_records=True)
    assert gone not in ds.ecg_id.tolist() and ds.filled == {f"records100/00000/{few:05d}_lr": 20}
    row = int(np.flatnonzero(ds.ecg_id == few)[0])
    mv = (ds.signals[row, 3].astype(np.float32) - ds.baseline[row, 3]) / ds.gain[row, 3]
    assert np.all(mv[100:120] == 0) and np.abs(mv).max() < 20  # 0 mV, never -32.768 mV
    # the training statistics stay those of real voltages (one record fewer, a few zeros)
    np.testing.assert_allclose(ds.std, ok.std, rtol=0.02)
    assert summary(ds)["records_with_missing_samples_filled"] == 1


def test_a_record_or_patient_in_two_splits_is_refused(real_ptbxl, tmp_path):
    import pandas as pd

    root = _copy(real_ptbxl, tmp_path / "twice")
    db = pd.read_csv(root / "ptbxl_database.csv")
    train_row = db.index[db["strat_fold"] <= 8][0]
    twin = db.loc[[train_row]].assign(strat_fold=10)
    pd.concat([db, twin]).to_csv(root / "ptbxl_database.csv", index=False)
    _expect_error(root, f"ecg_id {db.loc[train_row, 'ecg_id']} listed more than once")
    root = _copy(real_ptbxl, tmp_path / "patient")
    val_row = db.index[db["strat_fold"] == 9][0]
    moved = db.copy()
    moved.loc[val_row, "patient_id"] = db.loc[train_row, "patient_id"]
    moved.to_csv(root / "ptbxl_database.csv", index=False)
    _expect_error(
        root,
        "1 patient(s) with records in more than one of train (folds 1-8), validation (9) and test (10)",
        f"ecg_id {db.loc[val_row, 'ecg_id']} in val",
        "expected each patient's records in one split",
    )


def test_data_that_cannot_answer_the_question_is_refused(real_ptbxl, tmp_path):
    from dataclasses import replace

    ds = load_ptbxl(real_ptbxl, progress=False)
    require_answerable(ds)
    with pytest.raises(UserError, match=r"no record in fold\(s\) 9 \(val\)"):
        require_answerable(replace(ds, folds=np.where(ds.folds == 9, 1, ds.folds).astype(np.int8)))
    with pytest.raises(UserError, match=r"no record in fold\(s\) 10 \(test\)"):
        require_answerable(replace(ds, folds=np.where(ds.folds == 10, 1, ds.folds).astype(np.int8)))
    labels = ds.labels.copy()
    labels[ds.folds == 9, 4] = 0
    with pytest.raises(UserError, match=r"class HYP \(no positive records\): its AUC is undefined"):
        require_answerable(replace(ds, labels=labels))
