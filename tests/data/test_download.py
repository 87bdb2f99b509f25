"""The downloader against a local HTTP server (127.0.0.1) serving a real materialized subset."""

import hashlib
import http.server
import shutil
import threading
from pathlib import Path

import pytest
from conftest import run_main

from raysearch import UserError
from raysearch.data.download import download
from raysearch.data.ptbxl import load_ptbxl, summary


class Mirror(http.server.ThreadingHTTPServer):
    """Serves `root` with HTTP Range support; `cut` / `corrupt` inject faults per file."""

    def __init__(self, root: Path):
        self.root = root
        self.cut: dict[str, int] = {}  # path -> times left to drop the connection half-way
        self.corrupt: dict[str, int] = {}  # path -> times left to serve flipped bytes
        self.requests: list[tuple[str, str | None]] = []
        super().__init__(("127.0.0.1", 0), Handler)


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        server: Mirror = self.server
        rel = self.path.lstrip("/")
        path = server.root / rel
        server.requests.append((rel, self.headers.get("Range")))
        if not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        if server.corrupt.get(rel, 0) > 0:
            server.corrupt[rel] -= 1
            body = bytes(b ^ 0xFF for b in body[:64]) + body[64:]
        start = 0
        if rng := self.headers.get("Range"):
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if server.cut.get(rel, 0) > 0:
            server.cut[rel] -= 1
            self.wfile.write(body[start : start + (len(body) - start) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)  # the transfer breaks off mid-file
            return
        self.wfile.write(body[start:])


@pytest.fixture()
def mirror(real_ptbxl, tmp_path):
    """A PhysioNet-like release folder: the subset plus its SHA256SUMS.txt."""
    root = tmp_path / "release"
    shutil.copytree(real_ptbxl, root)
    lines = []
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        lines.append(f"{hashlib.sha256(f.read_bytes()).hexdigest()} {f.relative_to(root).as_posix()}")
    (root / "SHA256SUMS.txt").write_text("\n".join(lines) + "\n")
    server = Mirror(root)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_download_complete_and_readable(mirror, tmp_path, real_ptbxl):
    server, url = mirror
    dest = download(tmp_path / "dl", base_url=url, progress=False)
    got = summary(load_ptbxl(dest, progress=False))
    assert got["records"] == summary(load_ptbxl(real_ptbxl, progress=False))["records"]
    # a second run fetches nothing new: every file is already there with the right checksum
    before = len(server.requests)
    download(dest, base_url=url, progress=False)
    assert [r for r, _ in server.requests[before:]] == ["SHA256SUMS.txt"]


def test_interrupted_transfer_resumes_with_range(mirror, tmp_path):
    server, url = mirror
    name = "records100/00000/00003_lr.dat"
    server.cut[name] = 1
    dest = download(tmp_path / "dl", base_url=url, progress=False, retries=3)
    assert (dest / name).read_bytes() == (server.root / name).read_bytes()
    ranges = [rng for rel, rng in server.requests if rel == name]
    assert ranges[0] is None and ranges[1] == "bytes=12000-"  # resumed where it broke off


def test_corrupt_file_is_refetched(mirror, tmp_path):
    server, url = mirror
    name = "records100/00000/00005_lr.dat"
    server.corrupt[name] = 1
    dest = download(tmp_path / "dl", base_url=url, progress=False)
    assert (dest / name).read_bytes() == (server.root / name).read_bytes()
    assert [rel for rel, _ in server.requests].count(name) == 2


def test_persistently_corrupt_file_is_reported_not_kept(mirror, tmp_path):
    server, url = mirror
    name = "records100/00000/00006_lr.dat"
    server.corrupt[name] = 99
    with pytest.raises(UserError) as err:
        download(tmp_path / "dl", base_url=url, progress=False)
    assert f"{name}: checksum mismatch" in str(err.value)
    assert not (tmp_path / "dl" / name).exists() and (tmp_path / "dl" / (name + ".corrupt")).exists()
    # the CLI says so in one line plus the list, exit code 2, no traceback
    server.corrupt[name] = 99
    result = run_main("data", "download", str(tmp_path / "dl2"), "--base-url", url)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "1 of" in result.stderr and "checksum mismatch" in result.stderr


def test_a_folder_that_is_not_ptbxl(tmp_path):
    with pytest.raises(UserError, match="SHA256SUMS.txt: cannot fetch"):
        download(tmp_path / "dl", base_url="http://127.0.0.1:9/", progress=False, timeout=2)


def test_paths_the_release_names_stay_inside_dest(mirror, tmp_path):
    server, url = mirror
    sums = server.root / "SHA256SUMS.txt"
    good = sums.read_text()
    for line, message in (
        (f"{'0' * 64} records100/../../escaped.dat", "points outside"),
        (f"{'0' * 64} /etc/escaped.dat", "points outside"),
        ("xyz records100/00000/00001_lr.dat", "is not a SHA-256 digest"),
    ):
        sums.write_text(good + line + "\n")
        with pytest.raises(UserError, match=message):
            download(tmp_path / "dl" / "dest", base_url=url, progress=False)
        assert not (tmp_path / "escaped.dat").exists() and not (tmp_path / "dl" / "escaped.dat").exists()
        assert not (tmp_path / "dl" / "dest" / "records100").exists()  # refused before any fetch


def test_plain_http_is_named_and_other_schemes_refused(mirror, tmp_path, caplog):
    with pytest.raises(UserError, match="scheme 'ftp'; expected https://"):
        download(tmp_path / "dl", base_url="ftp://mirror.example/ptb-xl/", progress=False)
    download(tmp_path / "dl", base_url=mirror[1], progress=False)
    assert "is plain http: unencrypted" in caplog.text
