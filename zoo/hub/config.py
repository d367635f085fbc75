"""Where the cache lives and the knobs of the downloader (all overridable through the environment)."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Optional

from zoo.errors import UsageError


def offline() -> bool:
    """ZOO_OFFLINE=1: never touch the network."""
    return os.environ.get("ZOO_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def _float(name: str, default: float, positive: bool = False) -> float:
    """A finite, non-negative number from the environment (`positive`: above zero, e.g. a timeout)."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{name}={raw!r} is not a number", hint=f"Set {name} to a number of seconds, or unset it.") from None
    if not math.isfinite(value):
        raise UsageError(f"{name}={raw!r} is not a finite number", hint=f"Set {name} to a number of seconds, or unset it.")
    if value < 0 or (positive and value == 0):
        what = "above zero" if positive else "zero or more"
        raise UsageError(f"{name}={raw!r} must be {what}", hint=f"Set {name} to a number {what}, or unset it.")
    return value


@dataclass(frozen=True)
class Settings:
    """Timeouts and retry policy of one download."""

    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retries: int = 5  # per URL candidate, counted since the last attempt that made progress
    backoff: float = 1.0  # first sleep; doubles each retry
    backoff_max: float = 30.0
    deadline: float = 900.0  # total seconds spent retrying one candidate
    lock_timeout: float = 1800.0
    chunk_size: int = 1 << 16

    @classmethod
    def from_env(cls) -> "Settings":
        """ZOO_CONNECT_TIMEOUT, ZOO_TIMEOUT, ZOO_RETRIES, ZOO_BACKOFF, ZOO_RETRY_DEADLINE, ZOO_LOCK_TIMEOUT."""
        d = cls()
        return cls(
            connect_timeout=_float("ZOO_CONNECT_TIMEOUT", d.connect_timeout, positive=True),
            read_timeout=_float("ZOO_TIMEOUT", d.read_timeout, positive=True),
            retries=int(_float("ZOO_RETRIES", d.retries)),
            backoff=_float("ZOO_BACKOFF", d.backoff),
            backoff_max=max(_float("ZOO_BACKOFF", d.backoff), d.backoff_max),
            deadline=_float("ZOO_RETRY_DEADLINE", d.deadline),
            lock_timeout=_float("ZOO_LOCK_TIMEOUT", d.lock_timeout),
        )


def mirror_from_env(mirror: Optional[str]) -> Optional[str]:
    """The explicit mirror, else ZOO_MIRROR, else None."""
    value = mirror if mirror else os.environ.get("ZOO_MIRROR", "")
    return value.strip() or None
