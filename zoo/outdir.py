"""Output folders the user names with `--out`: checked before any long work, and never written at the
cost of the model being read or of files the zoo did not write.

The zoo records what it wrote into a folder (`.zoo-written.json`), so a second run into the same folder
may replace its own earlier files while a user's file of the same name is refused unless `--overwrite`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, List, Sequence

from zoo.errors import UsageError
from zoo.fsutil import atomic_write_text

RECORD = ".zoo-written.json"


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def written_here(out: Path) -> List[str]:
    """The names the zoo recorded as written into `out` (empty when none, or the record is unreadable)."""
    try:
        names = json.loads((out / RECORD).read_text(encoding="utf-8")).get("written", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [n for n in names if isinstance(n, str)]


def record_written(out: Path, names: Iterable[str]) -> None:
    """Add `names` to the record of what the zoo wrote into `out`."""
    merged = sorted(set(written_here(out)) | set(names))
    atomic_write_text(out / RECORD, json.dumps({"written": merged}, indent=1) + "\n")


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _writable(out: Path, flag: str) -> None:
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"{flag} {out}: {probe} is a file, not a folder", hint=f"Pick another {flag} folder.")
    if _read_only(probe):
        raise UsageError(f"{flag} {out} is on a read-only file system ({probe})",
                         hint=f"Pick an {flag} folder on a writable disk.")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {out}: {probe} is not writable by this user", hint=f"Pick an {flag} folder you can write.")


def prepare_out(out: Path, *, sources: Sequence[Path] = (), names: Sequence[str] = (), overwrite: bool = False,
                flag: str = "--out") -> Path:
    """Check an output folder before the work that fills it, and return it (user-expanded).

    Refused (UsageError): a path that is a file; a folder that is, contains or resolves (through
    symlinks) to one of the `sources` folders; one holding any of `names` that the zoo did not write
    (unless `overwrite`); a read-only or unwritable place. Nothing is created here.
    """
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise UsageError(f"{flag} {out} is a file, not a folder", hint=f"Pick a folder for {flag} (it is created if missing).")
    real = out.resolve()
    for source in sources:
        src = Path(source).resolve()
        if _within(src, real):
            same = "is" if src == real else "contains"
            raise UsageError(f"{flag} {out} {same} the model being read ({source}): writing there would replace it",
                             hint=f"Pick another {flag} folder.")
    conflicts = sorted(n for n in names if (out / n).exists() and n not in written_here(out))
    if conflicts and not overwrite:
        raise UsageError(f"{flag} {out} already holds {', '.join(conflicts)}, which the zoo did not write there",
                         hint=f"Pick another {flag} folder, or pass --overwrite to replace them.")
    _writable(out, flag)
    return out
