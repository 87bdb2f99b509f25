"""RUN_DIR = STORAGE/NAME: where a search keeps everything, a local folder or a URI.

    run = RunDir("runs", "search-4-20261125")        # a local path
    run = RunDir("s3://bucket/raysearch", "search-4") # a URI: Tune writes there itself, and
                                                      # raysearch's own files are staged locally
    run.progress["stages"]["teacher"] = ...; run.save_progress()

raysearch's own files (progress.json, teachers/, best/, summary.*, report*) are written to
`run.path`; with a URI that is a staging folder under $RAYSEARCH_CACHE/runs/, one per URI, synced
up after every change and fetched back (`sync("down")`, into an emptied staging folder) by
`--resume` or the report, from any machine.

A RUN_DIR has one owner at a time: `with run.owned(fresh=...)` holds an exclusive lock on its
local folder (the staging folder of a URI) while a search or a report writes there, and a fresh
run that fails before anything was trained leaves no folder behind.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from raysearch.data.cache import cache_dir
from raysearch.errors import UserError, first_line
from raysearch.files import read_json, write_error, write_text

log = logging.getLogger(__name__)

# What --resume needs from a URI RUN_DIR: the progress record, its wall time, the Optuna studies,
# the teachers, the chosen models.
RESUME_FILES = ("progress.json", "wall.json", "optuna.db", "teachers", "best")


LOCK = ".raysearch.lock"  # held by the process that owns the run (not part of the run)


MAX_NAME = 100  # characters: Tune adds trial folder names below it, file systems allow 255


class RunDir:
    """One run's folder: its location as the user names it, its local path, its progress record."""

    def __init__(self, storage: str, name: str):
        if not name or name in (".", "..") or any(c in name for c in "/\\") or not name.isprintable():
            raise UserError(
                f"--name {name!r}: expected a plain name (no '/', no '..'): RUN_DIR stays in --storage"
            )
        if len(name) > MAX_NAME:
            raise UserError(f"--name {name[:20]}...: {len(name)} characters; expected at most {MAX_NAME}")
        self.name = name
        self.keep = False  # set once something worth keeping was made (see owned)
        self._wrote_uri = False
        self._made: list[Path] = []
        if "://" in storage:  # s3://, gs://, ...: Tune writes there; our files are staged and synced
            self.storage = storage.rstrip("/")
            self.uri = self.storage + "/" + name
            # one staging folder per URI: another --storage with the same --name is another run
            digest = hashlib.sha256(self.uri.encode()).hexdigest()[:12]
            self.path = cache_dir() / "runs" / f"{digest}-{name}"
            self._filesystem()  # an unknown scheme fails here, in one line
        else:
            self.uri = None
            self.storage = str(Path(storage).expanduser().resolve())
            self.path = Path(self.storage) / name
            _check_writable(Path(self.storage), f"--storage {storage}")
        self.location = self.uri or str(self.path)
        self.progress_path = self.path / "progress.json"
        self.progress: dict = {}

    @classmethod
    def at(cls, location: str) -> RunDir:
        """The RUN_DIR at `location`, a path or a URI (the report's argument)."""
        location = location.rstrip("/")
        if "://" in location:
            storage, _, name = location.rpartition("/")
            return cls(storage, name)
        path = Path(location).expanduser().resolve()
        return cls(str(path.parent), path.name)

    def experiment(self, name: str) -> str:
        """Where the Tune experiment `name` lives inside RUN_DIR (a path or a URI)."""
        return f"{self.location}/{name}"

    def located(self, path: Path) -> str:
        """A path under the local folder named where it lives for the user (the URI's, if any)."""
        return (
            f"{self.location}/{path.relative_to(self.path)}" if path.is_relative_to(self.path) else str(path)
        )

    # -- progress ------------------------------------------------------------------------

    def load_progress(self) -> dict:
        self.progress = read_json(self.progress_path) if self.progress_path.is_file() else {}
        self.progress.setdefault("stages", {})
        return self.progress

    def save_progress(self) -> None:
        write_text(self.progress_path, json.dumps(self.progress, indent=1))
        self.sync("up")

    @contextmanager
    def wall_clock(self, every: float = 5.0) -> Iterator[WallClock]:
        """Count this invocation's wall time into wall.json as it runs (see WallClock); at the end,
        an interrupted invocation's too, save the progress record (and sync a URI RUN_DIR)."""
        try:
            with WallClock(self.path / "wall.json", every) as clock:
                yield clock
        finally:
            self.save_progress()

    # -- where it lives ------------------------------------------------------------------

    def exists(self) -> bool:
        """Whether RUN_DIR already holds a search (local or at the URI)."""
        if self.uri is None:
            return self.path.is_dir() and any(p.name != LOCK for p in self.path.iterdir())
        import pyarrow.fs as pafs

        fs, base = self._filesystem()
        with self._remote("read"):
            return fs.get_file_info(f"{base}/progress.json").type != pafs.FileType.NotFound

    @contextmanager
    def owned(self, fresh: bool) -> Iterator[RunDir]:
        """Own RUN_DIR while a search or report writes it: an exclusive lock on its local folder
        (a second process is refused at once). `fresh` (a new search): if it fails before
        anything worth keeping was made (`keep` still False), the folder is removed, so the
        corrected command is not refused as an existing run."""
        self._made = [p for p in (self.path, *self.path.parents) if not p.exists()]  # removed with it
        self.path.mkdir(parents=True, exist_ok=True)
        handle = open(self.path / LOCK, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise UserError(
                f"{self.location}: in use by another raysearch process (pid {holder}); wait for it to "
                f"end, or choose another --name"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        ours = fresh  # a folder that holds a run already is never ours to remove
        try:
            ours = fresh and not self.exists()
            yield self
        except BaseException:
            if ours and not self.keep:
                self.discard()
            raise
        finally:
            if self.path.is_dir():
                (self.path / LOCK).unlink(missing_ok=True)
            handle.close()

    def discard(self) -> None:
        """Remove RUN_DIR (and a URI's copy): a fresh run that made nothing worth keeping."""
        if self.uri is not None and self._wrote_uri:
            fs, base = self._filesystem()
            try:
                fs.delete_dir(base)
            except Exception:  # pyarrow raises OSError, or its own types: nothing left to remove
                pass
        shutil.rmtree(self.path, ignore_errors=True)
        for folder in self._made[1:]:  # the folders above it that this run made (--storage), if empty
            try:
                folder.rmdir()
            except OSError:
                break

    @contextmanager
    def _remote(self, what: str) -> Iterator[None]:
        """Errors of the URI's store said in one line (an unreachable or refusing store)."""
        try:
            yield
        except OSError as e:
            reason = first_line(e, 300)
            raise UserError(f"{self.uri}: cannot {what} there ({reason})") from None

    def sync(self, direction: str, paths: tuple[str, ...] = RESUME_FILES) -> None:
        """Copy raysearch's own files between the local staging folder and a URI RUN_DIR: "up" the
        whole folder, "down" the `paths` inside it that exist there (default: what --resume needs)."""
        if self.uri is None:
            return
        import pyarrow.fs as pafs

        fs, base = self._filesystem()
        local = pafs.LocalFileSystem()
        if direction == "up":
            self.path.mkdir(parents=True, exist_ok=True)
            with self._remote("write"):
                self._wrote_uri = True
                fs.create_dir(base, recursive=True)
                selector = pafs.FileSelector(str(self.path), recursive=True)
                for info in local.get_file_info(selector):  # our files, not the lock
                    rel = Path(info.path).relative_to(self.path)
                    if info.type == pafs.FileType.File and rel.name != LOCK:
                        fs.create_dir(f"{base}/{rel.parent}", recursive=True)
                        pafs.copy_files(
                            info.path, f"{base}/{rel}", source_filesystem=local, destination_filesystem=fs
                        )
            return
        self.clear_staging()  # it holds only what is at the URI now, never an older run's files
        with self._remote("read"):
            for rel in paths:
                info = fs.get_file_info(f"{base}/{rel}")
                if info.type != pafs.FileType.NotFound:
                    target = self.path / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    pafs.copy_files(
                        f"{base}/{rel}", str(target), source_filesystem=fs, destination_filesystem=local
                    )

    def clear_staging(self) -> None:
        """Empty a URI RUN_DIR's local staging folder (what is kept is at the URI)."""
        if self.uri is None or not self.path.is_dir():
            return
        for entry in self.path.iterdir():
            if entry.name != LOCK:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()

    def _filesystem(self):
        """pyarrow's filesystem for the URI RUN_DIR and the path inside it."""
        import pyarrow as pa
        import pyarrow.fs as pafs

        try:
            return pafs.FileSystem.from_uri(self.uri)
        except (pa.ArrowException, OSError) as e:
            raise UserError(
                f"{self.uri}: {first_line(e)}; expected a filesystem path or a URI pyarrow "
                f"can open (s3://, gs://, hdfs://, file://)"
            ) from None


class WallClock:
    """A search's wall time summed over its invocations, written to `path` when an invocation
    starts, every `every` seconds while it runs (a thread) and when it ends: an invocation that
    is killed still counts, to within `every` seconds.

        with run_dir.wall_clock() as clock:   # invocations + 1
            ...                               # clock.seconds, clock.this_invocation
    """

    def __init__(self, path: Path, every: float = 5.0):
        self.path, self.every = path, every
        try:
            recorded = read_json(path) if path.is_file() else {}
        except UserError as e:  # only the wall time's accounting: go on, and say so
            log.warning(f"{e}; counting the wall time afresh from here")
            recorded = {}
        self.before = float(recorded.get("seconds", 0.0))
        self.invocations = int(recorded.get("invocations", 0)) + 1
        self._t0 = time.perf_counter()
        self._end: float | None = None
        self.discarded = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="raysearch-wall-clock", daemon=True)

    @property
    def this_invocation(self) -> float:
        return (self._end or time.perf_counter()) - self._t0

    @property
    def seconds(self) -> float:
        return self.before + self.this_invocation

    def write(self) -> None:
        if not self.discarded:
            self._record(self.seconds, self.invocations)

    def discard(self) -> None:
        """Take this invocation back out (one refused before it did any work: a --resume that would
        change the search, data that cannot answer): the record is left as it was before."""
        self._stop.set()
        self.discarded = True
        self._record(self.before, self.invocations - 1)

    def _record(self, seconds: float, invocations: int) -> None:
        write_text(self.path, json.dumps({"seconds": round(seconds, 3), "invocations": invocations}))

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.write()
            except UserError:  # a full disk: said by the search's own writes; the clock goes on
                pass

    def __enter__(self) -> WallClock:
        self.write()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._end = time.perf_counter()
        self.write()


def _check_writable(storage: Path, what: str) -> None:
    """`storage` (made if missing) must be a folder this process can write into: said now, in one
    line, instead of a traceback after Ray started."""
    existing = storage
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{what}: {existing} is a file; expected a directory (or a path to create)")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise UserError(f"{what}: {write_error(existing, e)}") from None
