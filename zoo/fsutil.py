"""Crash-safe file and folder writes: a reader sees the old content or the new, never a half-written one."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional


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
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """atomic_write_bytes of `text` in UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


def replace_dir(src: Path, dst: Path, park: Optional[Path] = None) -> None:
    """Replace folder `dst` by `src` (same file system); an older `dst` is parked at `park`, then removed.

    `park` defaults to a hidden sibling of `dst`.
    """
    dst = Path(dst)
    if not dst.exists():
        os.replace(src, dst)
        return
    old = Path(park) if park is not None else dst.with_name(f".{dst.name}.old-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(dst, old)
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)
