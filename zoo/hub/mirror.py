"""Rewrite artifact URLs onto a mirror that serves the same paths."""
from __future__ import annotations

from typing import List, Optional, Sequence
from urllib.parse import urlsplit

from zoo.errors import UsageError


def check_mirror(mirror: str) -> str:
    """A mirror must be an http(s) base URL; returns it without a trailing slash."""
    try:
        parts = urlsplit(mirror)
        parts.port  # noqa: B018 - raises ValueError on a malformed host or port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(
            f"mirror {mirror!r} is not an http(s) base URL",
            hint="Give a base URL like https://mirror.example.org/zoo (ZOO_MIRROR or --mirror).",
        )
    return mirror.rstrip("/")


def rewrite(url: str, mirror: str) -> str:
    """https://host/a/b.tar -> MIRROR/a/b.tar (scheme and host replaced, path and query kept)."""
    parts = urlsplit(url)
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    return check_mirror(mirror) + tail


def candidates(urls: Sequence[str], mirror: Optional[str]) -> List[str]:
    """The ordered URL candidates to try: every URL, rewritten when a mirror is set (duplicates dropped)."""
    out: List[str] = []
    for url in urls:
        cand = rewrite(url, mirror) if mirror else url
        if cand not in out:
            out.append(cand)
    return out
