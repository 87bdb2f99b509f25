"""Where a dataset comes from: a PTB-XL folder, the default location, or the synthetic demo.

    ds = open_dataset(DataOptions())                   # $RAYSEARCH_DATA, else ./ptb-xl
    ds = open_dataset(DataOptions(data="synthetic"))   # generated once, cached, marked synthetic

Synthetic data is used only when asked for by name: a missing PTB-XL folder is an error that
says how to get one, never a silent fallback.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from raysearch.errors import UserError

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from raysearch.data.ptbxl import PTBXL

DATA_ENV = "RAYSEARCH_DATA"


DEFAULT_DATA = "ptb-xl"  # relative to the working directory, where `data download` puts it


def default_data() -> str:
    """The --data default: $RAYSEARCH_DATA, else ./ptb-xl."""
    return os.environ.get(DATA_ENV) or DEFAULT_DATA


@dataclass
class DataOptions:
    """Which dataset to read, and how (the CLI's --data, --sampling-rate, ...)."""

    data: str = field(default_factory=default_data)  # a PTB-XL folder or "synthetic"
    sampling_rate: int = 100
    skip_bad_records: bool = False
    synthetic_records: int = 2000


def open_dataset(options: DataOptions, progress: bool = True) -> PTBXL:
    """The dataset named by `options.data`, saying how many bad records were skipped."""
    from raysearch.data.ptbxl import load_ptbxl  # numpy, pandas, torch: not for --help

    spec = options.data
    if spec == "synthetic":
        from raysearch.data.synthetic import ensure_synthetic

        spec = str(ensure_synthetic(records=options.synthetic_records))
    elif not Path(spec).expanduser().exists():
        how = f"the default of --data, or ${DATA_ENV}" if spec == default_data() else "--data"
        raise UserError(
            f"{spec}: not a directory, no PTB-XL here ({how}); `python -m raysearch data download "
            f"{spec}` fetches it (about 0.6 GB at 100 Hz), or `--data synthetic` runs a demo on "
            f"generated data"
        )
    ds = load_ptbxl(spec, options.sampling_rate, skip_bad_records=options.skip_bad_records, progress=progress)
    if ds.skipped:
        log.warning(f"skipped {len(ds.skipped)} bad record(s) (--skip-bad-records)")
    if ds.filled:
        log.warning(
            f"{len(ds.filled)} record(s) had a few samples missing (WFDB's missing value), read as "
            f"0 mV: {sum(ds.filled.values())} samples in all"
        )
    return ds
