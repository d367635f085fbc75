"""The on-disk layout of the cache and its pins file.

ZOO_HOME/
  blobs/<sha256>/<file name>   verified downloads, content-addressed
  extracted/<sha256>/          archives unpacked (the model folder is inside, with zoo-artifact.json)
  partial/                     resumable partial downloads (deterministic names per artifact + URL)
  locks/                       one lock file per artifact, plus one for the pins file
  tmp/                         staging folders, moved into place with os.replace
  pins.json                    {ref: {sha256, size, md5, file, url, names, source, time[, extracted]}};
                               ref = first registry URL. A pin is written only once every check passed:
                               size and hashes, and for an archive its safe extraction into a model
                               folder (`extracted: true`; pins without it predate that rule).
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Dict, Iterator, List, Optional

from zoo.errors import CacheError
from zoo.fsutil import atomic_write_text, clean_stale_scratch
from zoo.hub.lock import FileLock

PINS_NAME = "pins.json"


def wrap_os_error(exc: OSError, what: str) -> CacheError:
    """A cache-folder OSError as a CacheError with a specific hint."""
    if exc.errno == errno.ENOSPC:
        return CacheError(f"disk full while {what}", hint="Free some space (`zoo cache clean` removes downloads and partial files), or point ZOO_HOME at a disk with room.")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return CacheError(f"permission denied while {what}", hint="Make ZOO_HOME writable, or point it at a folder you own.")
    return CacheError(f"cannot use the cache while {what}: {exc.strerror or exc}")


class Store:
    """Paths inside one cache home."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.blobs = self.home / "blobs"
        self.extracted = self.home / "extracted"
        self.partial = self.home / "partial"
        self.locks = self.home / "locks"
        self.tmp = self.home / "tmp"
        self.pins_file = self.home / PINS_NAME

    def ensure(self) -> None:
        """Create the folders; CacheError when the home is not writable."""
        for d in (self.blobs, self.extracted, self.partial, self.locks, self.tmp):
            try:
                d.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise wrap_os_error(exc, f"creating {d}") from exc
        clean_stale_scratch(self.tmp)  # extractions of processes that died half-way
        if not os.access(self.home, os.W_OK):
            raise CacheError(f"cache folder {self.home} is not writable",
                             hint="Make ZOO_HOME writable, or point it at a folder you own.")

    def lock(self, key: str, timeout: float) -> FileLock:
        return FileLock(self.locks / f"{key}.lock", timeout)

    def blob(self, sha256: str, filename: str) -> Path:
        return self.blobs / sha256 / filename

    def find_blob(self, sha256: str, filename: str) -> Optional[Path]:
        """The cached file with this hash: under `filename` if present, else under any name."""
        folder = self.blobs / sha256
        if (folder / filename).is_file():
            return folder / filename
        if not folder.is_dir():
            return None
        files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        return files[0] if files else None

    def staging(self, prefix: str) -> Path:
        """A fresh, unique path under tmp/ (not created)."""
        return self.tmp / f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def remove_content(self, sha256: str) -> List[Path]:
        """Remove the stored file and the extraction of these bytes; return the folders removed."""
        removed = []
        for path in (self.blobs / sha256, self.extracted / sha256):
            if path.exists():
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        return removed

    def iter_blobs(self) -> Iterator[Path]:
        if self.blobs.is_dir():
            for folder in sorted(self.blobs.iterdir()):
                if folder.is_dir():
                    for f in sorted(folder.iterdir()):
                        if f.is_file():
                            yield f

    # pins --------------------------------------------------------------------------------
    def read_pins(self) -> Dict[str, dict]:
        try:
            data = json.loads(self.pins_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise CacheError(f"pins file {self.pins_file} is unreadable ({exc})",
                             hint="Restore it from a backup, or delete it to pin checksums again on next download.") from exc
        return data.get("pins", {}) if isinstance(data, dict) else {}

    def update_pins(self, change) -> Dict[str, dict]:
        """Read-modify-write the pins under their own lock; `change(pins)` edits the dict in place."""
        with self.lock("pins", timeout=60.0):
            pins = self.read_pins()
            change(pins)
            self._write_pins(pins)
            return pins

    def _write_pins(self, pins: Dict[str, dict]) -> None:
        text = json.dumps({"version": 1, "pins": pins}, indent=2, sort_keys=True) + "\n"
        try:
            atomic_write_text(self.pins_file, text)
        except OSError as exc:
            raise wrap_os_error(exc, f"writing {self.pins_file}") from exc


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
