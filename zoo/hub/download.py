"""Stream one file over HTTP(S) into a resumable partial file, trying URL candidates in order.

The partial file has a deterministic name per artifact and URL, so a run that was killed leaves a
partial that the next run continues with a Range request. Callers hold the artifact's lock, so
only one process writes a given partial. Verification (size, hashes) is the caller's job.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import requests
import urllib3

from zoo.errors import DownloadError
from zoo.hub.config import Settings
from zoo.hub.store import wrap_os_error

# progress(chunks, total_or_None, already_have) -> chunks: a pass-through wrapper around the stream
ProgressWrap = Callable[[Iterator[bytes], Optional[int], int], Iterator[bytes]]

_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")
_UNSATISFIED_RANGE = re.compile(r"^\s*bytes\s+\*/(\d+)\s*$")


class _Retry(Exception):
    """A transient failure: try the same URL again after a pause."""

    def __init__(self, reason: str, retry_after: Optional[float] = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class _NextCandidate(Exception):
    """This URL cannot serve the file: go on with the next candidate."""


@dataclass(frozen=True)
class Downloaded:
    path: Path  # the completed partial file
    url: str
    resumed: bool  # part of the bytes came from an earlier attempt or run


def partial_path(workdir: Path, key: str, url: str) -> Path:
    """The deterministic partial file of one artifact fetched from one URL."""
    return workdir / f"{key}-{hashlib.sha256(url.encode()).hexdigest()[:16]}.part"


def _meta_path(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def discard_partial(part: Path) -> None:
    """Remove a partial file and its validators."""
    for p in (part, _meta_path(part)):
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def _load_meta(part: Path) -> dict:
    try:
        return json.loads(_meta_path(part).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _save_meta(part: Path, url: str, resp: requests.Response, total: Optional[int]) -> None:
    meta = {"url": url, "total": total, "etag": resp.headers.get("ETag"), "last_modified": resp.headers.get("Last-Modified")}
    _meta_path(part).write_text(json.dumps(meta), encoding="utf-8")


def _retry_after(resp: requests.Response) -> Optional[float]:
    raw = resp.headers.get("Retry-After", "")
    return float(raw) if raw.strip().isdigit() else None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        text = str(exc)
        for needle, words in (
            ("Name or service not known", "host name not found (DNS)"),
            ("nodename nor servname", "host name not found (DNS)"),
            ("Temporary failure in name resolution", "host name not found (DNS)"),
            ("NameResolutionError", "host name not found (DNS)"),
            ("Connection refused", "connection refused"),
            ("Read timed out", "timed out"),
            ("IncompleteRead", "connection closed mid-body"),
            ("Connection broken", "connection closed mid-body"),
            ("RemoteDisconnected", "connection closed by the server"),
            ("Connection reset", "connection reset"),
        ):
            if needle in text:
                return words
        return "connection failed"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection closed mid-body"
    return str(exc)


def _connect_failure(exc: BaseException) -> bool:
    """Nothing was exchanged with the host: DNS failure, refused or unroutable connection."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError) and not isinstance(exc, requests.ReadTimeout):
        text = str(exc)
        return any(s in text for s in ("NewConnectionError", "NameResolutionError", "Name or service", "name resolution", "Connection refused"))
    return False


def _chunks(resp: requests.Response, size: int) -> Iterator[bytes]:
    """The body as it arrives. read1 returns what the socket has, so a cut connection loses no
    bytes already received (iter_content would drop a partly filled chunk)."""
    read1 = getattr(resp.raw, "read1", None)
    if read1 is None or resp.headers.get("Content-Encoding", "identity") not in ("", "identity"):
        yield from resp.iter_content(chunk_size=size)
        return
    try:
        while True:
            chunk = read1(size)
            if not chunk:
                return
            yield chunk
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise requests.ReadTimeout(exc) from exc
    except urllib3.exceptions.SSLError as exc:
        raise requests.exceptions.SSLError(exc) from exc
    except (urllib3.exceptions.ProtocolError, urllib3.exceptions.DecodeError, http.client.HTTPException, OSError) as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from exc


def _resume_headers(part: Path, url: str, have: int) -> Dict[str, str]:
    """Request headers for the rest of `part` (a Range from `have`, If-Range when the same URL served it)."""
    headers = {"Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
        meta = _load_meta(part)
        validator = meta.get("etag") or meta.get("last_modified")
        if validator and meta.get("url") == url:
            headers["If-Range"] = validator  # the server sends the whole new file if it changed
    return headers


def _body_plan(resp: requests.Response, part: Path, have: int) -> Optional[Tuple[str, Optional[int], int]]:
    """(file mode, announced total, bytes kept) for the response's body, or None when `part` is already whole.

    Raises _NextCandidate for a missing file or an unexpected status, _Retry for a status worth retrying
    or a resume the server got wrong (the partial is discarded then)."""
    status = resp.status_code
    if status in (404, 410):
        raise _NextCandidate(f"HTTP {status} {resp.reason or ''}".strip())
    if status in (408, 429) or status >= 500:
        raise _Retry(f"HTTP {status} {resp.reason or ''}".strip(), _retry_after(resp))
    if status == 416 and have:
        m = _UNSATISFIED_RANGE.match(resp.headers.get("Content-Range", ""))
        if m and int(m.group(1)) == have:
            return None  # the partial already holds the whole file
        discard_partial(part)
        raise _Retry("the server refused to resume; starting over", 0.0)
    if status == 206:
        m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
        if not m or int(m.group(1)) != have:
            discard_partial(part)
            raise _Retry(f"bad Content-Range {resp.headers.get('Content-Range')!r}; starting over", 0.0)
        return "ab", (None if m.group(3) == "*" else int(m.group(3))), have
    if status == 200:
        length = resp.headers.get("Content-Length")
        return "wb", (int(length) if length and length.isdigit() else None), 0  # the body is the whole file
    raise _NextCandidate(f"HTTP {status} {resp.reason or ''}".strip())


def _write_body(resp: requests.Response, part: Path, mode: str, total: Optional[int], have: int,
                settings: Settings, progress: Optional[ProgressWrap]) -> None:
    """Stream the body into `part` and fsync it; a failed write is named with the file."""
    try:
        fh = open(part, mode)
    except OSError as exc:
        raise wrap_os_error(exc, f"writing {part}") from exc
    with fh:
        chunks: Iterator[bytes] = _chunks(resp, settings.chunk_size)
        if progress is not None:
            chunks = progress(chunks, total, have)
        try:
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        except OSError as exc:
            if isinstance(exc, requests.exceptions.RequestException):
                raise  # a broken connection, not a failed write
            raise wrap_os_error(exc, f"writing {part}") from exc


def _attempt(session: requests.Session, url: str, part: Path, settings: Settings,
             expected_size: Optional[int], progress: Optional[ProgressWrap]) -> bool:
    """One GET of the (rest of the) file into `part`. True when complete; raises _Retry/_NextCandidate."""
    have = part.stat().st_size if part.exists() else 0
    if expected_size is not None and have > expected_size:
        discard_partial(part)
        have = 0
    resp = session.get(url, stream=True, headers=_resume_headers(part, url, have),
                       timeout=(settings.connect_timeout, settings.read_timeout))
    with resp:
        plan = _body_plan(resp, part, have)
        if plan is None:
            return True
        mode, total, have = plan
        try:
            _save_meta(part, url, resp, total)
        except OSError as exc:
            raise wrap_os_error(exc, f"writing {part}") from exc
        _write_body(resp, part, mode, total, have, settings, progress)
    size = part.stat().st_size
    if total is None and expected_size is not None and size < expected_size:
        total = expected_size  # no Content-Length: the registry or pin says how long it must be
    if total is not None and size < total:
        raise _Retry(f"connection closed after {size} of {total} bytes")
    if total is not None and size > total:
        discard_partial(part)
        raise _Retry(f"received {size} bytes but {total} were announced; starting over", 0.0)
    return True


def _fetch_url(url: str, part: Path, settings: Settings, expected_size: Optional[int],
               progress: Optional[ProgressWrap]) -> bool:
    """Download `url` into `part` with retries; returns whether bytes from before were reused."""
    session = requests.Session()  # trust_env: honours HTTPS_PROXY/NO_PROXY and REQUESTS_CA_BUNDLE
    session.verify = True
    resumed = part.exists() and part.stat().st_size > 0
    failures = 0
    best = part.stat().st_size if resumed else 0
    started = time.monotonic()
    try:
        while True:
            try:
                if _attempt(session, url, part, settings, expected_size, progress):
                    return resumed
            except requests.exceptions.SSLError as exc:
                raise _NextCandidate(f"TLS verification failed ({exc.__class__.__name__})") from exc
            except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema) as exc:
                raise _NextCandidate(f"invalid URL: {exc}") from exc
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError, _Retry) as exc:
                have = part.stat().st_size if part.exists() else 0
                if have > best:
                    # the file grew past anything seen before: the retry budget starts again (a server
                    # that cuts every response at the same offset without honouring Range never does)
                    failures, best, resumed = 0, have, True
                failures += 1
                limit = min(settings.retries, 2) if _connect_failure(exc) else settings.retries
                elapsed = time.monotonic() - started
                if failures > limit or elapsed > settings.deadline:
                    tries = "" if failures <= 1 else f" after {failures} tries"
                    raise _NextCandidate(f"{_describe(exc)}{tries}") from exc
                pause = min(settings.backoff * (2 ** (failures - 1)), settings.backoff_max)
                if isinstance(exc, _Retry) and exc.retry_after is not None:
                    pause = min(exc.retry_after, settings.backoff_max) if exc.retry_after else 0.0
                time.sleep(min(pause, max(0.0, settings.deadline - elapsed)))
    finally:
        session.close()


def download(urls: Sequence[str], workdir: Path, key: str, label: str, settings: Settings,
             expected_size: Optional[int] = None, progress: Optional[ProgressWrap] = None) -> Downloaded:
    """Fetch the first URL candidate that works into a partial file under `workdir`."""
    errors: List[str] = []
    for url in urls:
        part = partial_path(workdir, key, url)
        try:
            resumed = _fetch_url(url, part, settings, expected_size, progress)
            return Downloaded(part, url, resumed)
        except _NextCandidate as exc:
            errors.append(f"{url}: {exc}")
    detail = "\n  ".join(errors)
    if all("HTTP 404" in e or "HTTP 410" in e for e in errors):
        hint = "The file is gone from every URL; set ZOO_MIRROR / --mirror to a host that still serves it."
    else:
        hint = "Check the network (proxy: HTTPS_PROXY; CA bundle: REQUESTS_CA_BUNDLE), or set ZOO_MIRROR / --mirror."
    noun = "the only URL" if len(urls) == 1 else f"all {len(urls)} URLs"
    raise DownloadError(f"cannot download {label}: {noun} failed:\n  {detail}", hint=hint)
