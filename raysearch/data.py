"""The PTB-XL data layer: read the PhysioNet layout once, cache it as a memory-mapped array.

    ds = load_ptbxl("path/to/ptb-xl")        # first call converts (both cores), later ones mmap
    x = ds.standardized(ds.split("train")[:64], leads=parse_leads("4"))   # (64, 4, T) float32

Follows the PTB-XL benchmark (Strodthoff et al. 2020): every scp code with `diagnostic == 1` in
`scp_statements.csv` maps to its `diagnostic_class`; a record's label is the multi-hot of those
classes over (NORM, MI, STTC, CD, HYP); records with none are dropped and counted. Folds 1-8
train, 9 validation, 10 test. Signal standardization (per lead mean/std) is fitted on the
training folds only. Releases 1.0.1 and 1.0.3 are both read (see metadata.py for the ages).
"""

from __future__ import annotations

import ast
import hashlib
import json
import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from raysearch import UserError
from raysearch.metadata import encode_metadata

CLASSES = ("NORM", "MI", "STTC", "CD", "HYP")
LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
# PhysioNet/CinC Challenge 2021 reduced-lead sets.
LEAD_SUBSETS = {
    "12": LEADS,
    "6": ("I", "II", "III", "aVR", "aVL", "aVF"),
    "4": ("I", "II", "III", "V2"),
    "3": ("I", "II", "V2"),
    "2": ("I", "II"),
}
SPLITS = {"train": tuple(range(1, 9)), "val": (9,), "test": (10,)}
DB_COLUMNS = (
    "ecg_id",
    "age",
    "sex",
    "height",
    "weight",
    "scp_codes",
    "strat_fold",
    "filename_lr",
    "filename_hr",
)
SCP_COLUMNS = ("diagnostic", "diagnostic_class")
RECORD_SECONDS = 10
CACHE_VERSION = 1


def parse_leads(spec: str | int) -> tuple[int, ...]:
    """Lead indices (PTB-XL order) for a named subset ('12', '6', '4', '3', '2') or names.

    Names are comma-separated and case-insensitive ('i,ii,avr' = I, II, aVR); order is kept.
    """
    spec = str(spec).strip()
    if spec in LEAD_SUBSETS:
        return tuple(LEADS.index(name) for name in LEAD_SUBSETS[spec])
    by_lower = {name.lower(): i for i, name in enumerate(LEADS)}
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n.lower() not in by_lower]
    if unknown or not names:
        raise UserError(
            f"unknown lead {', '.join(unknown) or repr(spec)!s}: expected one of "
            f"{', '.join(LEAD_SUBSETS)} or comma-separated names from {', '.join(LEADS)}"
        )
    idx = tuple(by_lower[n.lower()] for n in names)
    if len(set(idx)) != len(idx):
        raise UserError(f"lead list {spec!r} names a lead twice")
    return idx


def lead_label(idx: tuple[int, ...]) -> str:
    """The short name of a lead selection: its subset name if it is one, else the lead names."""
    for name, leads in LEAD_SUBSETS.items():
        if tuple(LEADS.index(n) for n in leads) == tuple(idx):
            return name
    return ",".join(LEADS[i] for i in idx)


@dataclass
class PTBXL:
    """PTB-XL records with a superclass, as arrays (picklable; numpy arrays go zero-copy via Ray).

    signals are the raw digital samples, (n, 12, T) int16; `standardized()` turns a batch into
    physical units standardized with the training folds' per-lead mean and std.
    """

    ecg_id: np.ndarray  # (n,) int64
    signals: np.ndarray  # (n, 12, T) int16, usually a read-only memmap
    gain: np.ndarray  # (n, 12) float32: ADC units per mV
    baseline: np.ndarray  # (n, 12) float32: ADC zero
    labels: np.ndarray  # (n, 5) float32 multi-hot over CLASSES
    folds: np.ndarray  # (n,) int8, strat_fold 1..10
    meta: np.ndarray  # (n, META_DIM) float32, see metadata.py
    raw_meta: np.ndarray  # (n, 4) float32 age, sex, height, weight as read (NaN = missing)
    mean: np.ndarray  # (12,) float32 per-lead mean (mV) over the training folds
    std: np.ndarray  # (12,) float32 per-lead std (mV) over the training folds
    sampling_rate: int
    dropped: int  # records without a diagnostic superclass
    skipped: list = field(default_factory=list)  # bad records left out (--skip-bad-records)
    source: str = ""
    # True while configurations are still being chosen: reading the test fold then is a bug
    test_sealed: bool = False

    def __len__(self) -> int:
        return len(self.ecg_id)

    def split(self, name: str) -> np.ndarray:
        """Row indices of a split: 'train' (folds 1-8), 'val' (9) or 'test' (10)."""
        if name == "test" and self.test_sealed:
            raise RuntimeError(
                "the test fold (10) was read while it is sealed: it may only be read after the "
                "configurations are frozen"
            )
        return np.flatnonzero(np.isin(self.folds, SPLITS[name]))

    def standardized(self, rows: np.ndarray, leads: tuple[int, ...] = tuple(range(12))) -> np.ndarray:
        """Batch `rows` of the chosen leads in mV, standardized: (len(rows), len(leads), T) float32."""
        rows = np.asarray(rows)
        leads = list(leads)
        x = self.signals[rows][:, leads].astype(np.float32)
        x -= self.baseline[rows][:, leads, None]
        x /= self.gain[rows][:, leads, None]
        x -= self.mean[leads][None, :, None]
        x /= self.std[leads][None, :, None]
        return x


# ---------------------------------------------------------------------------------------- csv


def read_tables(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read and check `ptbxl_database.csv` and `scp_statements.csv` under `root`."""
    if not root.is_dir():
        raise UserError(f"{root}: not a directory; expected a PTB-XL folder (with ptbxl_database.csv)")
    tables = []
    for name, columns, index in (
        ("ptbxl_database.csv", DB_COLUMNS, None),
        ("scp_statements.csv", SCP_COLUMNS, 0),
    ):
        path = root / name
        if not path.is_file():
            raise UserError(f"{path}: missing; {root} is not a PTB-XL folder (expected {name})")
        try:
            table = pd.read_csv(path, index_col=index)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
            raise UserError(f"{path}: not a readable csv ({str(e).splitlines()[0]})") from None
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise UserError(f"{path}: missing column(s) {', '.join(missing)}; expected PTB-XL's columns")
        tables.append(table)
    return tables[0], tables[1]


def superclass_labels(db: pd.DataFrame, scp: pd.DataFrame) -> np.ndarray:
    """(n, 5) multi-hot of the diagnostic superclasses, aggregated as in the PTB-XL benchmark."""
    diagnostic = scp[scp["diagnostic"] == 1]["diagnostic_class"].to_dict()
    labels = np.zeros((len(db), len(CLASSES)), dtype=np.float32)
    for row, codes in enumerate(db["scp_codes"]):
        try:
            parsed = ast.literal_eval(codes) if isinstance(codes, str) else {}
        except (ValueError, SyntaxError):
            raise UserError(
                f"ptbxl_database.csv: ecg_id {db['ecg_id'].iloc[row]}: scp_codes "
                f"{codes!r} is not a dict literal"
            ) from None
        for code in parsed:
            cls = diagnostic.get(code)
            if cls in CLASSES:
                labels[row, CLASSES.index(cls)] = 1.0
    return labels


# ------------------------------------------------------------------------------------ records


def _error_text(e: Exception) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


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
        record, error = None, _error_text(e)
    if record is None:
        try:
            record = wfdb.rdheader(path)
        except Exception as e:
            return f"{name}.hea: unreadable header ({_error_text(e)})"
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
    return record.d_signal, record.adc_gain, record.baseline


def _read_records(root: str, names: list[str], fs: int):
    """Read a chunk of records: int16 (k, 12, T) signals, gains, baselines, [(position, problem)].

    Bad records get zeros and a problem naming the file and what was expected.
    """
    sig = np.zeros((len(names), len(LEADS), RECORD_SECONDS * fs), dtype=np.int16)
    gain = np.ones((len(names), len(LEADS)), dtype=np.float32)
    base = np.zeros((len(names), len(LEADS)), dtype=np.float32)
    problems = []
    for i, name in enumerate(names):
        got = _read_one(root, name, fs)
        if isinstance(got, str):
            problems.append((i, got))
        else:
            sig[i], gain[i], base[i] = got[0].T, got[1], got[2]
    return sig, gain, base, problems


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
) -> list[tuple[int, str]]:
    """Read every record of `rows` into `out/signals.npy` with `workers` processes."""
    from tqdm import tqdm

    names = rows[column].tolist()
    n_samples = RECORD_SECONDS * fs
    signals = np.lib.format.open_memmap(
        out / "signals.npy", mode="w+", dtype=np.int16, shape=(len(names), len(LEADS), n_samples)
    )
    gain = np.ones((len(names), len(LEADS)), dtype=np.float32)
    base = np.zeros((len(names), len(LEADS)), dtype=np.float32)
    problems: list[tuple[int, str]] = []
    chunk = 250
    starts = list(range(0, len(names), chunk))
    ctx = multiprocessing.get_context(
        "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    )
    bar = tqdm(total=len(names), desc=f"converting {root.name} ({fs} Hz)", unit="rec", disable=not progress)
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = [pool.submit(_read_records, str(root), names[s : s + chunk], fs) for s in starts]
        for s, fut in zip(starts, futures, strict=True):
            sig, g, b, p = fut.result()
            signals[s : s + len(sig)] = sig
            gain[s : s + len(sig)] = g
            base[s : s + len(sig)] = b
            problems.extend((s + i, msg) for i, msg in p)
            bar.update(len(sig))
    bar.close()
    signals.flush()
    del signals
    np.savez(out / "scale.npz", gain=gain, baseline=base)
    return problems


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


def load_ptbxl(
    path: str | os.PathLike,
    sampling_rate: int = 100,
    skip_bad_records: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> PTBXL:
    """Load PTB-XL from its PhysioNet folder, converting it to the cache on first use.

    Raises UserError for anything wrong with the folder: missing csv/column, and all bad
    records at once (missing/truncated files, headers whose leads, length or rate disagree)
    unless `skip_bad_records`, which leaves them out and records their names in `.skipped`.
    """
    if sampling_rate not in (100, 500):
        raise UserError(f"sampling rate {sampling_rate}: expected 100 or 500 (Hz)")
    root = Path(path).expanduser().resolve()
    record_dir, column = (
        ("records100", "filename_lr") if sampling_rate == 100 else ("records500", "filename_hr")
    )
    db, scp = read_tables(root)
    if not (root / record_dir).is_dir():
        raise UserError(
            f"{root / record_dir}: missing; expected the {sampling_rate} Hz records "
            f"(python -m raysearch data download --rate {sampling_rate})"
        )
    key = _fingerprint(root, record_dir)
    out = cache_dir() / f"ptbxl-{sampling_rate}hz-{key[:20]}"
    if not (out / "manifest.json").is_file():
        _build_cache(root, db, scp, column, sampling_rate, out, workers or os.cpu_count() or 1, progress)
    manifest = json.loads((out / "manifest.json").read_text())
    if manifest["bad"] and not skip_bad_records:
        raise UserError(
            f"{len(manifest['bad'])} bad record(s) in {root} (fix or re-download them, or "
            f"pass --skip-bad-records to continue without them):\n  " + "\n  ".join(manifest["bad"])
        )
    arrays = np.load(out / "arrays.npz")
    keep = arrays["keep"]
    signals = np.load(out / "signals.npy", mmap_mode="r")
    return PTBXL(
        ecg_id=arrays["ecg_id"][keep],
        signals=signals[keep] if not keep.all() else signals,
        gain=arrays["gain"][keep],
        baseline=arrays["baseline"][keep],
        labels=arrays["labels"][keep],
        folds=arrays["folds"][keep],
        meta=arrays["meta"][keep],
        raw_meta=arrays["raw_meta"][keep],
        mean=arrays["mean"],
        std=arrays["std"],
        sampling_rate=sampling_rate,
        dropped=manifest["dropped"],
        skipped=manifest["bad"],
        source=str(root),
    )


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
    if folds.isna().any() or not folds.between(1, 10).all():
        bad = rows["ecg_id"][folds.isna() | ~folds.between(1, 10)].tolist()[:5]
        raise UserError(f"{root / 'ptbxl_database.csv'}: strat_fold must be 1..10 (ecg_id {bad})")
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        t0 = time.perf_counter()
        problems = _convert(root, rows, column, fs, tmp, workers, progress)
        scale = np.load(tmp / "scale.npz")
        keep = np.ones(len(rows), dtype=bool)
        keep[[i for i, _ in problems]] = False
        signals = np.load(tmp / "signals.npy", mmap_mode="r")
        train_rows = np.flatnonzero(keep & folds.isin(SPLITS["train"]).to_numpy())
        if len(train_rows) == 0:
            raise UserError(f"{root}: no usable record in the training folds 1-8")
        mean, std = _train_stats(signals, scale["gain"], scale["baseline"], train_rows)
        raw = (
            rows[["age", "sex", "height", "weight"]]
            .apply(pd.to_numeric, errors="coerce")
            .to_numpy(np.float32)
        )
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


def summary(ds: PTBXL) -> dict:
    """What `raysearch data info` prints: counts per fold and class, metadata coverage."""
    raw = ds.raw_meta
    return {
        "source": ds.source,
        "records": int(len(ds)),
        "dropped": int(ds.dropped),
        "skipped_bad_records": len(ds.skipped),
        "sampling_rate": int(ds.sampling_rate),
        "samples_per_record": int(ds.signals.shape[2]),
        "folds": {str(f): int((ds.folds == f).sum()) for f in range(1, 11)},
        "classes": {c: int(ds.labels[:, i].sum()) for i, c in enumerate(CLASSES)},
        "metadata_present": {
            name: int(np.isfinite(raw[:, i]).sum())
            for i, name in enumerate(("age", "sex", "height", "weight"))
        },
        "leads": list(LEADS),
    }


def open_dataset(
    spec: str,
    sampling_rate: int = 100,
    skip_bad_records: bool = False,
    synthetic_records: int = 2000,
    progress: bool = True,
) -> PTBXL:
    """`--data` as the CLI takes it: a PTB-XL folder, or 'synthetic' (generated once, cached)."""
    if spec == "synthetic":
        from raysearch.synth import ensure_synthetic

        spec = str(ensure_synthetic(records=synthetic_records))
    return load_ptbxl(spec, sampling_rate, skip_bad_records=skip_bad_records, progress=progress)
