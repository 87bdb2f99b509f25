"""RUN_DIR = STORAGE/NAME: where a search keeps everything, a local folder or a URI.

    run = RunDir("runs", "search-4-20261125")        # a local path
    run = RunDir("s3://bucket/raysearch", "search-4") # a URI: Tune writes there itself, and
                                                      # raysearch's own files are staged locally
    run.progress["stages"]["teacher"] = ...; run.save_progress()

raysearch's own files (progress.json, teachers/, best/, summary.*, report*) are written to
`run.path`; with a URI that is a staging folder under $RAYSEARCH_CACHE/runs/NAME, synced up after
every change and fetched back (`sync("down")`) by `--resume` or the report, from any machine.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from raysearch.data import cache_dir
from raysearch.errors import UserError

# What --resume needs from a URI RUN_DIR: the progress record, its wall time, the Optuna studies,
# the teachers, the chosen models.
RESUME_FILES = ("progress.json", "wall.json", "optuna.db", "teachers", "best")


class RunDir:
    """One run's folder: its location as the user names it, its local path, its progress record."""

    def __init__(self, storage: str, name: str):
        if not name or name in (".", "..") or "/" in name or "\\" in name:
            raise UserError(
                f"--name {name!r}: expected a plain name (no '/', no '..'): RUN_DIR stays in --storage"
            )
        self.name = name
        if "://" in storage:  # s3://, gs://, ...: Tune writes there; our files are staged and synced
            self.storage = storage.rstrip("/")
            self.uri = self.storage + "/" + name
            self.path = cache_dir() / "runs" / name
            self._filesystem()  # an unknown scheme fails here, in one line
        else:
            self.uri = None
            if Path(storage).expanduser().exists() and not Path(storage).expanduser().is_dir():
                raise UserError(f"--storage {storage}: a file; expected a directory (or a path to create)")
            self.storage = str(Path(storage).expanduser().resolve())
            self.path = Path(self.storage) / name
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
        self.progress = json.loads(self.progress_path.read_text()) if self.progress_path.is_file() else {}
        self.progress.setdefault("stages", {})
        return self.progress

    def save_progress(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.progress_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.progress, indent=1))
        tmp.replace(self.progress_path)
        self.sync("up")

    @contextmanager
    def wall_clock(self, every: float = 5.0) -> Iterator[WallClock]:
        """Count this invocation's wall time into wall.json as it runs (see WallClock); at the end,
        an interrupted invocation's too, save the progress record (and sync a URI RUN_DIR)."""
        try:
            with WallClock(self.path / "wall.json", self.progress.get("wall"), every) as clock:
                yield clock
        finally:
            self.save_progress()

    # -- where it lives ------------------------------------------------------------------

    def exists(self) -> bool:
        """Whether RUN_DIR already holds a search (local or at the URI)."""
        if self.uri is None:
            return self.path.exists() and any(self.path.iterdir())
        import pyarrow.fs as pafs

        fs, base = self._filesystem()
        return fs.get_file_info(f"{base}/progress.json").type != pafs.FileType.NotFound

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
            fs.create_dir(base, recursive=True)
            pafs.copy_files(str(self.path), base, source_filesystem=local, destination_filesystem=fs)
            return
        for rel in paths:
            info = fs.get_file_info(f"{base}/{rel}")
            if info.type != pafs.FileType.NotFound:
                target = self.path / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                pafs.copy_files(
                    f"{base}/{rel}", str(target), source_filesystem=fs, destination_filesystem=local
                )

    def _filesystem(self):
        """pyarrow's filesystem for the URI RUN_DIR and the path inside it."""
        import pyarrow as pa
        import pyarrow.fs as pafs

        try:
            return pafs.FileSystem.from_uri(self.uri)
        except (pa.ArrowException, OSError) as e:
            raise UserError(
                f"{self.uri}: {str(e).splitlines()[0]}; expected a filesystem path or a URI pyarrow "
                f"can open (s3://, gs://, hdfs://, file://)"
            ) from None


class WallClock:
    """A search's wall time summed over its invocations, written to `path` when an invocation
    starts, every `every` seconds while it runs (a thread) and when it ends: an invocation that
    is killed still counts, to within `every` seconds.

        with run_dir.wall_clock() as clock:   # invocations + 1
            ...                               # clock.seconds, clock.this_invocation
    """

    def __init__(self, path: Path, older: dict | None = None, every: float = 5.0):
        self.path, self.every = path, every
        # runs written before wall.json kept their total in progress.json
        recorded = json.loads(path.read_text()) if path.is_file() else (older or {})
        self.before = float(recorded.get("seconds", 0.0))
        self.invocations = int(recorded.get("invocations", 0)) + 1
        self._t0 = time.perf_counter()
        self._end: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="raysearch-wall-clock", daemon=True)

    @property
    def this_invocation(self) -> float:
        return (self._end or time.perf_counter()) - self._t0

    @property
    def seconds(self) -> float:
        return self.before + self.this_invocation

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"seconds": round(self.seconds, 3), "invocations": self.invocations}))
        tmp.replace(self.path)

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            self.write()

    def __enter__(self) -> WallClock:
        self.write()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._end = time.perf_counter()
        self.write()
