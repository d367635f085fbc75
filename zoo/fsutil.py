"""Crash-safe file and folder writes: a reader sees the old content or the new, never a half-written one.

Everything written here follows the user's umask (tempfile creates 0600 files and 0700 folders; a results
folder shared by a team must stay readable). Scratch folders are named `.<name>.<pid>-<token>.zoo-tmp`
beside their target, so a later run can tell which ones a killed process left behind.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

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


@contextlib.contextmanager
def staged_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write; on a normal exit it is synced and replaces `path`.

    On any exception the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=SCRATCH_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:  # the bytes reach the disk before the name does
            os.fsync(fh.fileno())
        follow_umask(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def hash_file(*paths: Path) -> Tuple[str, str, int]:
    """(sha256, md5, size) of the bytes of `paths` one after the other, each file read once."""
    sha, md5, size = hashlib.sha256(), hashlib.md5(), 0
    for path in paths:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                sha.update(block)
                md5.update(block)
                size += len(block)
    return sha.hexdigest(), md5.hexdigest(), size


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a staged_file (a reader sees the old bytes or the new)."""
    with staged_file(path) as tmp:
        tmp.write_bytes(data)


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


class StagedDir:
    """A scratch folder beside `target` (same file system) that becomes `target` on commit, or is merged into it.

    Use it as a context manager: whatever is still staged on exit (a failure, or nothing committed) is removed.

        with StagedDir(out) as stage:
            write_into(stage.path)
            stage.commit()
    """

    def __init__(self, target: Path, parent: Optional[Path] = None, inside: bool = False) -> None:
        """`parent`: where the scratch folder goes (default: beside `target`; it must be on the same file system).

        `inside`: stage inside `target` (created now, removed again if it stays empty), for a folder that is
        only merged into: the target may then be a mount point, or sit under a folder the user cannot write.
        """
        self.target = Path(target)
        self.inside = inside
        self._created = False
        if inside:
            if not self.target.is_dir():
                self.target.mkdir(parents=True)
                self._created = True
            parent = self.target
        self.path = scratch_dir(Path(parent) if parent is not None else self.target.parent, self.target.name)

    def commit(self, park: Optional[Path] = None) -> Path:
        """Replace `target` as a whole by the staged folder (see replace_dir for `park`); return `target`."""
        if self.inside:
            raise ValueError("a folder staged inside its target can only be merged into it")
        replace_dir(self.path, self.target, park)
        return self.target

    def merge(self, last: Sequence[str] = ()) -> Path:
        """Move each staged entry into `target` (created now), replacing entries of the same name; return `target`.

        The entries named in `last` move last, in that order: a file that marks a complete folder (a
        model file, a metadata file) appears only once everything it vouches for is in place.
        """
        self.target.mkdir(parents=True, exist_ok=True)
        rest = sorted(p for p in self.path.iterdir() if p.name not in last)
        for item in rest + [self.path / name for name in last if (self.path / name).exists()]:
            dest = self.target / item.name
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)
            os.replace(item, dest)
        return self.target

    def discard(self) -> None:
        """Remove what is still staged (and a target created for it that stayed empty)."""
        shutil.rmtree(self.path, ignore_errors=True)
        if self._created:
            with contextlib.suppress(OSError):
                self.target.rmdir()  # only when empty: a merged result stays

    def __enter__(self) -> "StagedDir":
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()
