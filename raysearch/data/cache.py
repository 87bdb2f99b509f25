"""The cache of a PTB-XL folder: every WFDB record read once with wfdb (both cores), checked, and
kept as one memory-mapped int16 array with its gains, baselines, labels and the training folds'
per-lead statistics, under $RAYSEARCH_CACHE (default ~/.cache/raysearch).

The cache is keyed by the csv bytes and every record file's size and modification time, written
to a temporary folder and renamed (a half-written cache is never served). WFDB's missing-value
sample (-32768) is never read as a voltage: a record with a lead missing more than MAX_MISSING of
its samples is a bad record; below that, its missing samples are set to the lead's baseline (0 mV)
and counted.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from raysearch.data.database import _check_split_by_patient, raw_metadata, superclass_labels
from raysearch.data.metadata import encode_metadata
from raysearch.data.schema import LEADS, RECORD_SECONDS, SPLITS
from raysearch.errors import UserError, first_line

CACHE_VERSION = 2  # 2: WFDB's missing samples read as missing, patients checked against the split


WFDB_MISSING = -32768  # WFDB's missing-value sample in format 16


MAX_MISSING = 0.05  # a lead with more of its samples missing makes its record a bad record


def _read_one(root: str, name: str, fs: int):
    """Read one WFDB record with wfdb: (digital (T, 12) int16, gain, baseline) or a problem string.

    The header is parsed once (by rdrecord) and checked afterwards; the .dat size is checked
    against the header so a truncated file is named as such whatever wfdb made of it.
    """
    import wfdb  # imported in the worker: keeps `import raysearch.data` light

    n_samples = RECORD_SECONDS * fs
    path = os.path.join(root, name)
    if not os.path.exists(path + ".hea"):
        return f"{name}.hea: missing"
    try:
        record = wfdb.rdrecord(path, physical=False, return_res=16)
        error = None
    except Exception as e:  # wfdb raises many types for malformed headers and data
        record, error = None, first_line(e)
    if record is None:
        try:
            record = wfdb.rdheader(path)
        except Exception as e:
            return f"{name}.hea: unreadable header ({first_line(e)})"
    got = [str(s).upper() for s in (record.sig_name or [])]
    if got != [n.upper() for n in LEADS]:
        return f"{name}.hea: leads {','.join(got)}, expected {','.join(LEADS)}"
    if record.fs != fs or record.sig_len != n_samples:
        return f"{name}.hea: {record.sig_len} samples at {record.fs} Hz, expected {n_samples} at {fs} Hz"
    if set(record.fmt) != {"16"}:
        return f"{name}.hea: WFDB format {','.join(sorted(set(record.fmt)))}, expected 16"
    dat = os.path.join(os.path.dirname(name), record.file_name[0])
    want = n_samples * len(LEADS) * 2
    if not os.path.exists(os.path.join(root, dat)):
        return f"{dat}: missing"
    size = os.path.getsize(os.path.join(root, dat))
    if size != want:
        return f"{dat}: {size} bytes, expected {want} ({'truncated' if size < want else 'too long'})"
    if error is not None or record.d_signal is None or record.d_signal.shape != (n_samples, len(LEADS)):
        return f"{name}: unreadable ({error or 'unexpected signal shape'})"
    if record.checksum is not None:  # WFDB headers carry each lead's sample sum mod 2^16
        wrong = [
            lead
            for lead, want, got in zip(LEADS, record.checksum, record.calc_checksum(), strict=True)
            if int(want) % 65536 != got
        ]
        if wrong:
            return (
                f"{dat}: samples of {', '.join(wrong)} do not match the checksums in {name}.hea "
                f"(changed since written)"
            )
    signal = record.d_signal
    missing = signal == WFDB_MISSING
    if missing.any():
        share = missing.mean(axis=0)
        if share.max() > MAX_MISSING:
            worst = ", ".join(f"{lead} {100 * m:.0f}%" for lead, m in zip(LEADS, share, strict=True) if m)
            return (
                f"{dat}: samples missing (WFDB's missing value {WFDB_MISSING}) in {worst}; expected at "
                f"most {MAX_MISSING:.0%} of a lead"
            )
        signal = np.where(missing, np.asarray(record.baseline, signal.dtype)[None, :], signal)
    return signal, record.adc_gain, record.baseline, int(missing.sum())


def _read_records(root: str, names: list[str], fs: int):
    """Read a chunk of records: int16 (k, 12, T) signals, gains, baselines, [(position, problem)],
    {position: missing samples filled}. Bad records get zeros and a problem naming the file and
    what was expected.
    """
    sig = np.zeros((len(names), len(LEADS), RECORD_SECONDS * fs), dtype=np.int16)
    gain = np.ones((len(names), len(LEADS)), dtype=np.float32)
    base = np.zeros((len(names), len(LEADS)), dtype=np.float32)
    problems, filled = [], {}
    for i, name in enumerate(names):
        got = _read_one(root, name, fs)
        if isinstance(got, str):
            problems.append((i, got))
        else:
            sig[i], gain[i], base[i] = got[0].T, got[1], got[2]
            if got[3]:
                filled[i] = got[3]
    return sig, gain, base, problems, filled


def _fingerprint(root: Path, record_dir: str) -> str:
    """Content key of a PTB-XL folder: the csv bytes and every record file's name, size, mtime.

    Hashing 0.6-3 GB of signals on each load would cost seconds; size + mtime (as make and
    rsync do) catches any rewrite of a record file, the csv bytes catch any label/fold change.
    """
    h = hashlib.sha256(f"v{CACHE_VERSION}".encode())
    for name in ("ptbxl_database.csv", "scp_statements.csv"):
        h.update((root / name).read_bytes())
    top = root / record_dir
    if top.is_dir():
        for sub in sorted(os.scandir(top), key=lambda e: e.name):
            if sub.is_dir():
                for entry in sorted(os.scandir(sub.path), key=lambda e: e.name):
                    st = entry.stat()
                    h.update(f"{sub.name}/{entry.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def cache_dir() -> Path:
    """Where converted datasets live: $RAYSEARCH_CACHE, else ~/.cache/raysearch."""
    return Path(os.environ.get("RAYSEARCH_CACHE", Path.home() / ".cache" / "raysearch"))


def _convert(
    root: Path, rows: pd.DataFrame, column: str, fs: int, out: Path, workers: int, progress: bool
) -> tuple[list[tuple[int, str]], dict[str, int]]:
    """Read every record of `rows` into `out/signals.npy` with `workers` processes; the bad
    records' problems and, by record, the missing samples filled at the baseline."""
    from tqdm import tqdm

    names = rows[column].tolist()
    n_samples = RECORD_SECONDS * fs
    signals = np.lib.format.open_memmap(
        out / "signals.npy", mode="w+", dtype=np.int16, shape=(len(names), len(LEADS), n_samples)
    )
    gain = np.ones((len(names), len(LEADS)), dtype=np.float32)
    base = np.zeros((len(names), len(LEADS)), dtype=np.float32)
    problems: list[tuple[int, str]] = []
    filled: dict[str, int] = {}
    chunk = 250
    starts = list(range(0, len(names), chunk))
    ctx = multiprocessing.get_context(
        "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    )
    bar = tqdm(total=len(names), desc=f"converting {root.name} ({fs} Hz)", unit="rec", disable=not progress)
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = [pool.submit(_read_records, str(root), names[s : s + chunk], fs) for s in starts]
        for s, fut in zip(starts, futures, strict=True):
            sig, g, b, p, f = fut.result()
            signals[s : s + len(sig)] = sig
            gain[s : s + len(sig)] = g
            base[s : s + len(sig)] = b
            problems.extend((s + i, msg) for i, msg in p)
            filled.update((names[s + i], n) for i, n in f.items())
            bar.update(len(sig))
    bar.close()
    signals.flush()
    del signals
    np.savez(out / "scale.npz", gain=gain, baseline=base)
    return problems, filled


def _train_stats(signals: np.ndarray, gain: np.ndarray, base: np.ndarray, rows: np.ndarray):
    """Per-lead mean and std in mV over the training rows, accumulated in float64 chunks."""
    total = np.zeros(signals.shape[1])
    total_sq = np.zeros(signals.shape[1])
    for s in range(0, len(rows), 1024):
        r = rows[s : s + 1024]
        x = (signals[r].astype(np.float64) - base[r][:, :, None]) / gain[r][:, :, None]
        total += x.sum(axis=(0, 2))
        total_sq += (x**2).sum(axis=(0, 2))
    count = len(rows) * signals.shape[2]
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 1e-12))
    return mean.astype(np.float32), std.astype(np.float32)


def _build_cache(
    root: Path,
    db: pd.DataFrame,
    scp: pd.DataFrame,
    column: str,
    fs: int,
    out: Path,
    workers: int,
    progress: bool,
) -> None:
    """Convert the folder into `out` atomically (a half-written cache is never served)."""
    labels = superclass_labels(db, scp)
    has_class = labels.any(axis=1)
    rows = db[has_class].reset_index(drop=True)
    folds = pd.to_numeric(rows["strat_fold"], errors="coerce")
    wrong = folds.isna() | ~folds.between(1, 10) | (folds % 1 != 0)
    if wrong.any():
        shown = ", ".join(
            f"{e}: {v!r}"
            for e, v in zip(rows["ecg_id"][wrong][:5], rows["strat_fold"][wrong][:5], strict=True)
        )
        raise UserError(
            f"{root / 'ptbxl_database.csv'}: strat_fold of {int(wrong.sum())} record(s) not a whole "
            f"number 1..10 (ecg_id {shown})"
        )
    _check_split_by_patient(root, db, rows, folds)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        t0 = time.perf_counter()
        problems, filled = _convert(root, rows, column, fs, tmp, workers, progress)
        scale = np.load(tmp / "scale.npz")
        keep = np.ones(len(rows), dtype=bool)
        keep[[i for i, _ in problems]] = False
        signals = np.load(tmp / "signals.npy", mmap_mode="r")
        train_rows = np.flatnonzero(keep & folds.isin(SPLITS["train"]).to_numpy())
        if len(train_rows) == 0:
            raise UserError(f"{root}: no usable record in the training folds 1-8")
        mean, std = _train_stats(signals, scale["gain"], scale["baseline"], train_rows)
        raw = raw_metadata(rows)
        np.savez(
            tmp / "arrays.npz",
            ecg_id=rows["ecg_id"].to_numpy(np.int64),
            keep=keep,
            gain=scale["gain"],
            baseline=scale["baseline"],
            labels=labels[has_class],
            folds=folds.to_numpy(np.int8),
            meta=encode_metadata(*raw.T),
            raw_meta=raw,
            mean=mean,
            std=std,
        )
        manifest = {
            "source": str(root),
            "sampling_rate": fs,
            "records": int(len(rows)),
            "dropped": int((~has_class).sum()),
            "bad": [msg for _, msg in sorted(problems)],
            "missing_samples_filled": filled,  # record -> samples set to its baseline (0 mV)
            "convert_seconds": round(time.perf_counter() - t0, 2),
            "version": CACHE_VERSION,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        if out.exists():  # another process finished first: keep its copy
            shutil.rmtree(tmp)
        else:
            tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
