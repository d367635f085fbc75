"""One exclusive file lock per artifact so that parallel fetches download once.

fcntl.flock is released by the kernel when its holder dies, so a lock file left behind by a killed
run is simply re-acquired (that is the stale-lock recovery). The holder's pid is written into the
file so a timeout can name who holds it.
"""
from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Optional, Type

from zoo.errors import CacheError


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class FileLock:
    """`with FileLock(path, timeout):` holds an exclusive flock on `path` (created if missing)."""

    def __init__(self, path: Path, timeout: float, poll: float = 0.05) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.poll = poll
        self._fh: Optional[IO[str]] = None

    def _holder(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8").strip() or "unknown"
        except OSError:
            return "unknown"

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(self.path, "a+", encoding="utf-8")
        except OSError as exc:
            raise CacheError(f"cannot create lock file {self.path}: {exc.strerror}") from exc
        start = time.monotonic()
        recovered = False
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    fh.close()
                    raise CacheError(f"cannot lock {self.path}: {exc.strerror}") from exc
            if time.monotonic() - start >= self.timeout:
                holder = self._holder()
                host, _, pid = holder.partition(":")
                # The holder's pid is gone yet the lock is held: a child inherited the descriptor.
                # Replace the lock file once so the next fetch is not blocked forever.
                if not recovered and host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid)):
                    recovered = True
                    fh.close()
                    try:
                        self.path.unlink()
                    except OSError:
                        pass
                    fh = open(self.path, "a+", encoding="utf-8")
                    start = time.monotonic()
                    continue
                fh.close()
                raise CacheError(
                    f"timed out after {self.timeout:.0f} s waiting for the lock {self.path} (held by {holder})",
                    hint="Another zoo process is fetching the same artifact; wait for it, or raise ZOO_LOCK_TIMEOUT.",
                )
            time.sleep(self.poll)
        fh.seek(0)
        fh.truncate()
        fh.write(f"{socket.gethostname()}:{os.getpid()}")
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            try:
                self._fh.seek(0)
                self._fh.truncate()
                fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            finally:
                self._fh.close()
                self._fh = None

    def __enter__(self) -> "FileLock":
        self.acquire()
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.release()
