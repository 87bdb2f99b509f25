"""WFDB records for a model: leads by name, mV exactly as the data layer computes it, other rates
resampled; a metadata CSV read strictly; every problem a one-line error naming the record."""

import numpy as np
import pytest
import wfdb
from scipy.signal import resample_poly

from raysearch.data.ptbxl import load_ptbxl
from raysearch.deploy.records import RecordError, lookup, read_metadata_csv, read_record
from raysearch.errors import UserError

FIRST = "records100/00000/00001_lr"


def write_copy(real_ptbxl, dest, name, leads=None, units=None, fs=100, upsample=1, seconds=None):
    """A copy of PTB-XL's first record: some leads (in that order), other units, or upsampled."""
    src = wfdb.rdrecord(str(real_ptbxl / FIRST))
    names = leads or src.sig_name
    picks = [src.sig_name.index(n) for n in names]
    signal = src.p_signal[:, picks]
    if upsample > 1:
        signal = resample_poly(signal, upsample, 1, axis=0)
    if seconds is not None:
        signal = signal[: int(seconds * fs)]
    factor = {"mV": 1.0, "uV": 1000.0, "mmHg": 1.0}[units or "mV"]
    wfdb.wrsamp(
        name,
        fs=fs,
        units=[units or "mV"] * len(names),
        sig_name=list(names),
        p_signal=signal * factor,
        fmt=["16"] * len(names),
        write_dir=str(dest),
    )
    return str(dest / name)


def test_leads_by_name_in_any_order_exactly_as_training_reads_them(real_ptbxl, tmp_path):
    data = load_ptbxl(real_ptbxl, progress=False)
    row = int(np.flatnonzero(data.ecg_id == 1)[0])
    mv = (data.signals[row].astype(np.float32) - data.baseline[row][:, None]) / data.gain[row][:, None]
    got = read_record(str(real_ptbxl / FIRST), ("V2", "I", "II"), 100)
    assert got.dtype == np.float32 and got.shape == (3, 1000)
    assert np.array_equal(got, mv[[7, 0, 1]])  # bit for bit: the model sees what training saw
    assert np.array_equal(read_record(str(real_ptbxl / FIRST) + ".hea", ("ii",), 100), mv[[1]])


def test_missing_lead_and_foreign_units_name_the_record(real_ptbxl, tmp_path):
    path = write_copy(real_ptbxl, tmp_path, "limb", leads=["II", "I", "III"])
    with pytest.raises(RecordError, match=r"limb: no lead V2 \(it has II, I, III\); the model reads I, V2"):
        read_record(path, ("I", "V2"), 100)
    micro = write_copy(real_ptbxl, tmp_path, "micro", leads=["I", "II"], units="uV")
    np.testing.assert_allclose(
        read_record(micro, ("I", "II"), 100), read_record(path, ("I", "II"), 100), atol=2e-3
    )
    pressure = write_copy(real_ptbxl, tmp_path, "bp", leads=["I", "II"], units="mmHg")
    with pytest.raises(RecordError, match=r"bp: lead I in 'mmHg'; expected mV"):
        read_record(pressure, ("I", "II"), 100)
    with pytest.raises(RecordError, match="nothere: no header"):
        read_record(str(tmp_path / "nothere"), ("I",), 100)
    (tmp_path / "broken.hea").write_text("broken 2 100\n")
    with pytest.raises(RecordError, match="broken: unreadable WFDB record"):
        read_record(str(tmp_path / "broken"), ("I",), 100)


def test_faster_records_are_resampled_and_slower_ones_refused(real_ptbxl, tmp_path):
    original = read_record(str(real_ptbxl / FIRST), ("I", "II"), 100)
    fast = write_copy(real_ptbxl, tmp_path, "fast", leads=["I", "II"], fs=500, upsample=5)
    back = read_record(fast, ("I", "II"), 100)
    assert back.shape == original.shape
    assert np.corrcoef(back.ravel(), original.ravel())[0, 1] > 0.99
    slow = write_copy(real_ptbxl, tmp_path, "slow", leads=["I", "II"], fs=50)
    with pytest.raises(RecordError, match="slow: 50 Hz, below the model's 100 Hz"):
        read_record(slow, ("I", "II"), 100)
    odd = write_copy(real_ptbxl, tmp_path, "odd", leads=["I", "II"], fs=333.3331)
    with pytest.raises(RecordError, match="odd: 333.333 Hz cannot be resampled to 100 Hz exactly"):
        read_record(odd, ("I", "II"), 100)


def test_metadata_csv(tmp_path):
    csv = tmp_path / "patients.csv"
    csv.write_text("Record,Age,Sex,Weight\nrec1,64,F,70.5\nscans/rec2,,male,\nrec3,300,1,NA\n")
    table = read_metadata_csv(csv)
    np.testing.assert_array_equal(table["rec1"], [64, 1, np.nan, 70.5])
    np.testing.assert_array_equal(table["scans/rec2"], [np.nan, 0, np.nan, np.nan])
    assert lookup(table, "some/dir/rec1.hea", "patients.csv")[0] == 64  # by file name
    assert lookup(table, "scans/rec2", "patients.csv")[1] == 0  # by the path as given
    with pytest.raises(RecordError, match="rec9: not in patients.csv; expected a line with record 'rec9'"):
        lookup(table, "x/rec9", "patients.csv")
    for text, message in (
        ("record,age\nrec1,sixty\n", "line 2: age 'sixty'; expected a number"),
        ("record,sex\nrec1,x\n", "line 2: sex 'x'; expected 0/1, M/F or male/female"),
        ("record,age\nrec1,60\nrec1,61\n", "line 3: record 'rec1' listed twice"),
        ("name,age\nrec1,60\n", "columns name, age; expected 'record' and any of age, sex, height, weight"),
        ("", "not a readable CSV"),
    ):
        csv.write_text(text)
        with pytest.raises(UserError, match=message):
            read_metadata_csv(csv)
    with pytest.raises(UserError, match="no such metadata CSV"):
        read_metadata_csv(tmp_path / "absent.csv")


def test_a_record_with_missing_samples_is_reported_not_scored(real_ptbxl, tmp_path):
    record = wfdb.rdrecord(str(real_ptbxl / FIRST), physical=False)
    record.d_signal[:, 0] = -32768  # lead I: WFDB's missing value throughout
    record.d_signal[10:13, 1] = -32768
    record.checksum = record.calc_checksum()
    record.record_name = "holes"
    record.wrsamp(write_dir=str(tmp_path))
    with pytest.raises(
        RecordError, match=r"holes: samples missing \(WFDB's missing value\) in I \(1000 of 1000\)"
    ):
        read_record(str(tmp_path / "holes"), ("I", "II"), 100)
    with pytest.raises(RecordError, match=r"in II \(3 of 1000\)"):
        read_record(str(tmp_path / "holes"), ("II",), 100)
    assert read_record(str(tmp_path / "holes"), ("V1",), 100).shape == (1, 1000)  # other leads are whole
