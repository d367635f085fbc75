"""Crash-safe file and folder writes: a reader sees the old content or the new, never a half-written one.

Everything written here follows the user's umask (tempfile creates 0600 files and 0700 folders; a results
folder shared by a team must stay readable). Scratch folders are named `.<name>.<pid>-<token>.zoo-tmp`
beside their target, so a later run can tell which ones a killed process left behind.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import List, Optional

SCRATCH_SUFFIX = ".zoo-tmp"
_SCRATCH_RE = re.compile(r"^\..*\.(\d+)-[^.]+\.zoo-tmp$")
_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process umask (reading it means setting it; done under a lock and restored at once)."""
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def follow_umask(path: Path, directory: bool = False) -> None:
    """Give `path` the mode a plain open()/mkdir() would have given it under the current umask."""
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a synced temp file in the same folder and os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        follow_umask(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """atomic_write_bytes of `text` in UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


def scratch_dir(parent: Path, name: str) -> Path:
    """A fresh, empty folder in `parent` for building `parent/name` (same file system: the final rename is atomic)."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f".{name}.{os.getpid()}-", suffix=SCRATCH_SUFFIX, dir=parent))
    follow_umask(path, directory=True)
    return path


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def clean_stale_scratch(parent: Path) -> List[Path]:
    """Remove scratch folders in `parent` whose process is gone (a killed run); return what was removed."""
    parent = Path(parent)
    removed: List[Path] = []
    if not parent.is_dir():
        return removed
    for entry in parent.iterdir():
        match = _SCRATCH_RE.match(entry.name)
        if match and not _alive(int(match.group(1))):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def replace_dir(src: Path, dst: Path, park: Optional[Path] = None) -> None:
    """Replace folder `dst` by `src` (same file system); an older `dst` is parked at `park`, then removed.

    `park` defaults to a scratch name beside `dst`, so a crash between the two renames is cleaned up later.
    """
    dst = Path(dst)
    if not dst.exists():
        os.replace(src, dst)
        return
    old = Path(park) if park is not None else dst.with_name(f".{dst.name}.{os.getpid()}-old{SCRATCH_SUFFIX}")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(dst, old)
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)
