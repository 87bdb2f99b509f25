"""Download PTB-XL from PhysioNet: resumable, verified against SHA256SUMS.txt, with a progress bar.

    python -m raysearch data download [DEST] [--rate 500] [--version 1.0.3]

Every file listed in the release's SHA256SUMS.txt that we need (the two csvs and the records of the
asked sampling rates) is fetched into DEST. A file already present with the right checksum is
kept; an interrupted transfer (`FILE.part`) resumes with an HTTP Range request; a file whose
checksum is wrong is fetched again from scratch, and if it is still wrong it is reported (and
left as `FILE.corrupt`), never silently kept.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from raysearch.errors import UserError

log = logging.getLogger(__name__)

PHYSIONET = "https://physionet.org/files/ptb-xl/{version}/"


DEFAULT_VERSION = "1.0.3"


CHUNK = 1 << 16


DIGEST = re.compile(r"[0-9a-f]{64}")


def _check_base(base: str, given: bool) -> None:
    """https (PhysioNet's), or a mirror the user named: plain http with a warning, or file://."""
    scheme = urllib.parse.urlparse(base).scheme
    if scheme == "https" or (given and scheme == "file"):
        return
    if given and scheme == "http":
        log.warning(
            f"raysearch: warning: {base} is plain http: unencrypted, so a network in between could "
            f"change files and their checksums alike; use https where the mirror offers it"
        )
        return
    raise UserError(
        f"--base-url {base}: scheme {scheme or 'none'!r}; expected https:// (or http://, file://)"
    )


def _inside(dest: Path, rel: str, line: int) -> None:
    """A file SHA256SUMS.txt names must land inside DEST: a relative path without '..'."""
    target = (dest / rel).resolve()
    if Path(rel).is_absolute() or ".." in Path(rel).parts or not target.is_relative_to(dest.resolve()):
        raise UserError(
            f"SHA256SUMS.txt line {line}: {rel!r} points outside {dest}; expected paths inside the "
            f"release (nothing was downloaded)"
        )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fetch(url: str, part: Path, timeout: float, on_bytes) -> None:
    """Append the rest of `url` to `part`, resuming from its current size with a Range request."""
    start = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416:  # already complete
            return
        raise
    with response:
        resumed = start and response.status == 206  # 200: the server ignored Range
        expected = response.headers.get("Content-Length")
        received = 0
        with open(part, "ab" if resumed else "wb") as fh:
            while block := response.read(CHUNK):
                fh.write(block)
                received += len(block)
                on_bytes(len(block))
    if expected is not None and received < int(expected):
        raise ConnectionError(f"transfer broke off after {received} of {expected} bytes")


def _get(base: str, rel: str, digest: str, dest: Path, retries: int, timeout: float, on_bytes) -> str | None:
    """Fetch one file until its checksum matches; None on success, else the reason it failed."""
    final = dest / rel
    if final.exists() and _sha256(final) == digest:
        return None
    final.parent.mkdir(parents=True, exist_ok=True)
    part = final.with_name(final.name + ".part")
    refetched = False
    for attempt in range(retries + 1):
        try:
            _fetch(base + rel, part, timeout, on_bytes)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            if attempt == retries:
                return f"{rel}: download failed ({getattr(e, 'reason', e)})"
            time.sleep(min(0.2 * 2**attempt, 5.0))
            continue  # resume from what .part holds
        if _sha256(part) == digest:
            part.replace(final)
            return None
        if refetched:
            part.replace(final.with_name(final.name + ".corrupt"))
            return f"{rel}: checksum mismatch after re-fetching (kept as {rel}.corrupt)"
        part.unlink()  # corrupt: fetch once more from scratch
        refetched = True
    return f"{rel}: gave up after {retries + 1} attempts"


def download(
    dest: str | os.PathLike,
    base_url: str | None = None,
    version: str = DEFAULT_VERSION,
    rates: tuple[int, ...] = (100,),
    workers: int = 8,
    retries: int = 5,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Download PTB-XL into `dest`; returns the folder. Raises UserError listing every failed file."""
    from tqdm import tqdm

    base = (base_url or PHYSIONET.format(version=version)).rstrip("/") + "/"
    _check_base(base, given=base_url is not None)
    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    sums_path = dest / "SHA256SUMS.txt"
    try:
        with urllib.request.urlopen(base + "SHA256SUMS.txt", timeout=timeout) as response:
            sums_path.write_bytes(response.read())
    except (urllib.error.URLError, OSError) as e:
        raise UserError(
            f"{base}SHA256SUMS.txt: cannot fetch ({getattr(e, 'reason', e)}); "
            f"expected a PTB-XL release folder"
        ) from None
    wanted = {}
    for number, line in enumerate(sums_path.read_text(errors="replace").splitlines(), start=1):
        parts = line.split(maxsplit=1)
        if len(parts) != 2:
            continue
        digest, rel = parts[0].lower(), parts[1].strip().lstrip("*")
        if not DIGEST.fullmatch(digest):
            raise UserError(
                f"SHA256SUMS.txt line {number}: {parts[0][:70]!r} is not a SHA-256 digest; "
                f"expected 64 hex digits and a path"
            )
        _inside(dest, rel, number)
        if rel in ("ptbxl_database.csv", "scp_statements.csv") or any(
            rel.startswith(f"records{r}/") for r in rates
        ):
            wanted[rel] = digest
    for required in ("ptbxl_database.csv", "scp_statements.csv"):
        if required not in wanted:
            raise UserError(f"{base}SHA256SUMS.txt does not list {required}; expected a PTB-XL release")
    bar = tqdm(total=len(wanted), desc="PTB-XL files", unit="file", disable=not progress)
    byte_bar = tqdm(desc="downloaded", unit="B", unit_scale=True, disable=not progress)
    failures = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(_get, base, rel, digest, dest, retries, timeout, byte_bar.update)
            for rel, digest in sorted(wanted.items())
        ]
        for fut in futures:
            if (error := fut.result()) is not None:
                failures.append(error)
            bar.update(1)
    bar.close()
    byte_bar.close()
    if failures:
        raise UserError(
            f"{len(failures)} of {len(wanted)} file(s) failed; run the same command again to "
            f"resume:\n  " + "\n  ".join(failures)
        )
    return dest
