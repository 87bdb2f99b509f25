"""What a search is asked (the command line's options, `raysearch.search`'s keyword arguments) and
where its trials run: plain data, light to import (the CLI builds its --help from these defaults)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from raysearch.data.dataset import DataOptions
from raysearch.errors import UserError


@dataclass
class ClusterOptions:
    """Where trials run and what each gets (the CLI's --address, --cpus-per-trial, ...)."""

    address: str | None = field(default_factory=lambda: os.environ.get("RAY_ADDRESS"))
    num_cpus: int | None = None  # CPUs of a local Ray (default: all)
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0  # fractions pack trials on one GPU
    max_concurrent: int = 0  # 0: as many as the cluster's CPUs allow
    max_failures: int = 2  # restarts of a crashed trial from its checkpoint
    verbose: bool = False  # Tune's own tables and logs

    def check(self) -> None:
        """Refuse, before anything is written, what no cluster can give: a trial needs CPUs, no
        negative GPUs, counts that are counts; a cluster to join must answer (Ray would retry
        for minutes)."""
        numbers = (
            ("--cpus-per-trial", self.cpus_per_trial, 0.0, False, "a number of CPUs > 0"),
            (
                "--gpus-per-trial",
                self.gpus_per_trial,
                0.0,
                True,
                "a number of GPUs >= 0 (1/P packs P trials)",
            ),
            ("--max-concurrent", self.max_concurrent, 0, True, "a whole number >= 0 (0: as the CPUs allow)"),
            ("--max-failures", self.max_failures, 0, True, "a whole number of restarts >= 0"),
            ("--num-cpus", 1 if self.num_cpus is None else self.num_cpus, 1, True, "a whole number >= 1"),
        )
        for flag, value, low, inclusive, expected in numbers:
            if not (math.isfinite(value) and (value >= low if inclusive else value > low)):
                raise UserError(f"{flag} {value:g}: expected {expected}")
        if self.address:
            check_address(self.address)
        else:
            check_temp_dir()


# The longest temp folder whose local Ray's socket paths fit a Unix socket's 107 bytes: it is followed
# by /rs-XXXXXXXX/ray/session_<date>_<time>_<micros>_<pid>/sockets/plasma_store (80 characters).
MAX_TMPDIR = 107 - 80


def check_temp_dir() -> None:
    """The local Ray's folder ($RAY_TMPDIR, else the system's temp) must be short enough for its
    sockets: Ray would fail on start with a traceback about socket paths."""
    import tempfile

    base = os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()
    if len(base) > MAX_TMPDIR:
        raise UserError(
            f"RAY_TMPDIR {base}: {len(base)} characters, too long for the local Ray's socket paths "
            f"(107 bytes at most); expected a folder of at most {MAX_TMPDIR} characters, such as /tmp"
        )


def check_address(address: str, timeout: float = 5.0) -> None:
    """A Ray address to join must answer within `timeout` seconds (`auto` is Ray's to find)."""
    import socket
    from urllib.parse import urlsplit

    if address == "auto":
        return
    where = urlsplit(address if "://" in address else f"ray://{address}")
    try:
        host, port = where.hostname, where.port
    except ValueError:
        host = port = None
    if not host or not port:
        raise UserError(f"--address {address}: expected HOST:PORT of a running Ray cluster's head (or auto)")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise UserError(
            f"--address {address}: nothing answers there ({reason}); expected the address of a running "
            f"Ray cluster's head (`ray start --head` prints it)"
        ) from None


@dataclass
class SearchOptions(DataOptions, ClusterOptions):
    """Everything a search is asked to do (the CLI's options; `raysearch.search`'s arguments)."""

    leads: str = "4"  # 2, 3, 4, 6, comma-separated, or 'all'
    trials: int = 16  # per arm (student and baseline) per lead subset
    space: str | None = None  # None: the paper's space when trials get GPUs, else the CPU space
    storage: str = field(default_factory=lambda: os.environ.get("RAYSEARCH_STORAGE", "runs"))
    name: str | None = None  # default: search-<leads>-<time>
    seed: int = 0
    teacher: str | None = None  # a teacher checkpoint: no teacher search
    teacher_trials: int = 2  # per embedding size
    no_baseline: bool = False
    mlflow: str | None = None  # an MLflow tracking URI: every trial logged there too
    # each arm's top configurations retrained with more seeds, the choice by their means
    # (searching/finalists.py); None: 3 when trials get GPUs, 2 on CPUs; 0: one run decides
    finalists: int | None = None
    finalist_seeds: int = 3  # further seeds per finalist (its first run makes one more)
    resume: bool = False
    threshold_rule: str = "f1"  # the chosen models' per-class thresholds, fitted on validation

    def finalist_count(self, recorded: dict | None = None) -> int:
        """--finalists as a number: the one asked for; for a resumed run that was not asked, the
        run's (0 for a run made before finalists existed); else 3 with GPUs, 2 on CPUs."""
        if self.finalists is not None:
            return self.finalists
        if self.resume and recorded is not None:
            return int(recorded.get("finalists") or 0)
        return 3 if self.gpus_per_trial > 0 else 2
