"""Writing raysearch's own files so that none is ever half-written.

    write_text(path, text)                       # whole, or not at all
    write_with(path, lambda tmp: np.savez(tmp, ...))

Each file is written to a temporary name beside it and renamed over the old one, so a reader (a
`--resume`, a report) sees the old file or the new one, never a truncated one. A full disk or a
read-only folder is a UserError naming the file, not a traceback.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

from raysearch.errors import UserError, first_line


class DiskFull(UserError):
    """A write failed for want of space: what was written before is intact, and a run resumes."""


def write_with(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """`write(tmp)` writes the file at a temporary path, which then takes `path`'s name."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        raise write_error(path, e) from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # a read-only file system refuses even that
            pass
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_with(path, lambda tmp: tmp.write_text(text))


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return write_with(path, lambda tmp: tmp.write_bytes(data))


def disk_full(error: BaseException) -> bool:
    """Whether `error` (or what caused it) says the disk is full (an OSError, or SQLite's words)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, DiskFull) or (
            isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)
        ):
            return True
        if "database or disk is full" in str(error) or "No space left on device" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def write_error(path: Path, error: OSError) -> UserError:
    """An OSError of writing `path`, said in one line with what to do."""
    if disk_full(error):
        return DiskFull(f"{path}: the disk is full; free some space (what was written so far is kept)")
    reason = error.strerror or first_line(error)
    return UserError(f"{path}: cannot be written ({reason}); expected a writable folder")


def read_json(path: str | os.PathLike):
    """A JSON file raysearch wrote; a damaged one is a UserError naming it."""
    import json

    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: damaged ({first_line(e)}); expected the JSON raysearch wrote") from None
