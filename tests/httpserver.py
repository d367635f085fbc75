"""A real threaded HTTP server on 127.0.0.1 for tests, with injectable faults.

    with FileServer() as srv:
        srv.add("/PaddleSlim/m.tar", data, statuses=[503, 503], cuts=[1000, 5000], rate=2e6)
        url = srv.url("/PaddleSlim/m.tar")       # http://127.0.0.1:PORT/PaddleSlim/m.tar
        ...
        srv.bytes_sent("/PaddleSlim/m.tar")       # body bytes actually written to clients
        srv.requests("/PaddleSlim/m.tar")         # [Hit(status, range, start, sent), ...]

Faults per path (each list is consumed one request at a time, then the file is served normally):
  statuses     status codes answered instead of the file (e.g. [503, 503] or [404])
  cuts         absolute byte offsets: the next body is cut (socket shut) when it reaches the offset
  truncate     every body stops at this offset under a Content-Length for the whole file
  ignore_range answer 200 with the whole file even to a Range request
  stalls       seconds to sleep after the headers, one per request (to hit a client read timeout)
  rate         bytes per second (throttle, so a test can kill or race a client mid-download)
  body         bytes served instead of `data` (a wrong file under the right name)
  no_length    send no Content-Length (the body ends when the connection closes; size unknown)
Paths not added answer 404. The `fixture`-free class is importable by any test module.
"""
from __future__ import annotations

import hashlib
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional, Sequence, Tuple


@dataclass
class Hit:
    """One request the server answered."""

    method: str
    status: int
    range: Optional[str]
    start: int
    sent: int = 0  # body bytes written before the response ended or was cut


@dataclass
class Entry:
    data: bytes
    statuses: List[int] = field(default_factory=list)
    cuts: List[int] = field(default_factory=list)
    stalls: List[float] = field(default_factory=list)
    truncate: Optional[int] = None
    ignore_range: bool = False
    rate: Optional[float] = None
    body: Optional[bytes] = None
    no_length: bool = False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - keep test output clean
        pass

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        owner = self.server.owner
        path = self.path.split("?", 1)[0]
        rng = self.headers.get("Range")
        with owner.lock:
            entry = owner.files.get(path)
            status_fault = entry.statuses.pop(0) if entry and entry.statuses else None
            serving = entry is not None and status_fault is None and not head
            cut = entry.cuts.pop(0) if serving and entry.cuts else None
            stall = entry.stalls.pop(0) if serving and entry.stalls else 0.0
        hit = Hit(self.command, 0, rng, 0)
        with owner.lock:
            owner.hits.setdefault(path, []).append(hit)
        if entry is None or status_fault is not None:
            code = 404 if entry is None else status_fault
            hit.status = code
            body = f"{code}\n".encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            if code in (429, 503):
                self.send_header("Retry-After", "0")
            self.end_headers()
            if not head:
                self.wfile.write(body)
            return
        data = entry.body if entry.body is not None else entry.data
        total = len(data)
        etag = '"%s"' % hashlib.sha256(data).hexdigest()[:16]
        start = 0
        if rng and not entry.ignore_range and rng.startswith("bytes="):
            first = rng[len("bytes="):].split(",")[0].split("-")[0]
            if_range = self.headers.get("If-Range")
            if first.isdigit() and (if_range is None or if_range == etag):
                start = int(first)
        if start >= total and start > 0:
            hit.status = 416
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{total}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        hit.start = start
        if start:
            hit.status = 206
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
        else:
            hit.status = 200
            self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if entry.no_length:
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(total - start))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", etag)
        self.end_headers()
        if head:
            return
        self.wfile.flush()
        if stall:
            time.sleep(stall)
        stop = total
        for limit in (cut, entry.truncate):
            if limit is not None and start < limit < stop:
                stop = limit
        pos = start
        step = 16384
        began = time.monotonic()
        try:
            while pos < stop:
                chunk = data[pos:min(pos + step, stop)]
                self.wfile.write(chunk)
                pos += len(chunk)
                hit.sent += len(chunk)
                if entry.rate:
                    ahead = (pos - start) / entry.rate - (time.monotonic() - began)
                    if ahead > 0:
                        time.sleep(ahead)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return
        if stop < total:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: "FileServer"

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up mid-body are what the fault tests are about


class FileServer:
    """Serve a dict of path -> bytes on 127.0.0.1 from a background thread."""

    def __init__(self, files: Optional[Dict[str, bytes]] = None) -> None:
        self.lock = threading.Lock()
        self.files: Dict[str, Entry] = {}
        self.hits: Dict[str, List[Hit]] = {}
        for path, data in (files or {}).items():
            self.add(path, data)
        self._httpd: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    # content -----------------------------------------------------------------------------
    def add(self, path: str, data: bytes, *, statuses: Sequence[int] = (), cuts: Sequence[int] = (),
            stalls: Sequence[float] = (), truncate: Optional[int] = None, ignore_range: bool = False,
            rate: Optional[float] = None, body: Optional[bytes] = None, no_length: bool = False) -> str:
        """Serve `data` at `path` with the given faults; returns the full URL."""
        if not path.startswith("/"):
            path = "/" + path
        with self.lock:
            self.files[path] = Entry(bytes(data), list(statuses), list(cuts), list(stalls), truncate,
                                     ignore_range, rate, body, no_length)
        return self.url(path) if self._httpd else path

    def remove(self, path: str) -> None:
        with self.lock:
            self.files.pop(path, None)

    # inspection --------------------------------------------------------------------------
    def requests(self, path: str) -> List[Hit]:
        with self.lock:
            return list(self.hits.get(path, []))

    def bytes_sent(self, path: str) -> int:
        return sum(h.sent for h in self.requests(path))

    def reset_log(self) -> None:
        with self.lock:
            self.hits.clear()

    # lifecycle ---------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def start(self) -> "FileServer":
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "FileServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused), for unreachable-host tests."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


def write_recipe(folder, name: str, artifacts: Dict[str, dict], default: Optional[str] = None) -> "object":
    """Write a minimal valid recipe NAME.yaml into `folder` (for ZOO_RECIPE_PATH); returns its path.

    artifacts: {role: {"urls": [...]} or {"bundled": ...}, plus optional sha256/md5/size/layout}.
    """
    import json
    from pathlib import Path

    arts = {}
    for role, spec in artifacts.items():
        spec = dict(spec)
        spec.setdefault("layout", "inference")
        arts[role] = spec
    if "fp32" not in arts and "pretrained" not in arts:
        arts["fp32"] = {"urls": ["https://example.invalid/unused/fp32.tar"], "layout": "inference"}
    recipe = {
        "name": name,
        "summary": "test entry",
        "task": "classification",
        "arch": "inference_model",
        "strategy": "ptq",
        "source": {"doc": "test", "url": "https://example.invalid/doc"},
        "artifacts": arts,
        "default_artifact": default or next(iter(artifacts)),
        "dataset": {"kind": "digits", "split": "val", "num_classes": 10},
        "preprocess": {"resize": 8, "channels": "L", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
        "quant": {"algo": "KL", "batch_nums": 1},
        "published": [{"input_size": 8, "top1": 90.0}],
    }
    path = Path(folder) / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(recipe, indent=2), encoding="utf-8")  # JSON is valid YAML
    return path


# ---- archive builders and fixtures shared by the tests that need a remote artifact ----------

import io as _io
import tarfile as _tarfile
import zipfile as _zipfile

import pytest

# Tiny timeouts and pauses so fault tests take milliseconds, not minutes.
FAST_ENV = {
    "ZOO_TIMEOUT": "0.5",
    "ZOO_CONNECT_TIMEOUT": "0.5",
    "ZOO_RETRIES": "3",
    "ZOO_BACKOFF": "0.01",
    "ZOO_RETRY_DEADLINE": "20",
    "ZOO_LOCK_TIMEOUT": "30",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}


def make_tar(members: Dict[str, bytes], compress: str = "", special: Sequence["_tarfile.TarInfo"] = ()) -> bytes:
    """A tar archive of regular files (name -> bytes), plus raw TarInfo members (links, devices)."""
    buf = _io.BytesIO()
    with _tarfile.open(fileobj=buf, mode="w:" + compress) as tf:
        for name, data in members.items():
            info = _tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tf.addfile(info, _io.BytesIO(data))
        for info in special:
            tf.addfile(info)
    return buf.getvalue()


def make_zip(members: Dict[str, bytes], symlinks: Dict[str, str] = None) -> bytes:
    """A zip archive of regular files, plus symlink members (name -> target)."""
    buf = _io.BytesIO()
    with _zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = _zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, target)
    return buf.getvalue()


def legacy_model_tar(folder: str = "model_dir", params_size: int = 4096, compress: str = "") -> Tuple[bytes, Dict[str, bytes]]:
    """A PaddleSlim-style archive: one folder holding __model__ + __params__ (random bytes)."""
    import os as _os

    files = {f"{folder}/__model__": b"program" * 50, f"{folder}/__params__": _os.urandom(params_size)}
    return make_tar(files, compress), files


@pytest.fixture
def file_server():
    """A started FileServer, stopped after the test."""
    with FileServer() as srv:
        yield srv


@pytest.fixture
def hub_env(tmp_path, monkeypatch):
    """A private ZOO_HOME, a recipe folder on ZOO_RECIPE_PATH and fast timeouts/backoff."""
    from types import SimpleNamespace

    home, recipes = tmp_path / "home", tmp_path / "recipes"
    recipes.mkdir()
    monkeypatch.setenv("ZOO_HOME", str(home))
    monkeypatch.setenv("ZOO_RECIPE_PATH", str(recipes))
    monkeypatch.delenv("ZOO_OFFLINE", raising=False)
    monkeypatch.delenv("ZOO_MIRROR", raising=False)
    for key, value in FAST_ENV.items():
        monkeypatch.setenv(key, value)
    return SimpleNamespace(home=home, recipes=recipes)
