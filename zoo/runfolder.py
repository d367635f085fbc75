"""The output folder of `zoo reproduce`: whose it is, and whether a run may write or resume there.

A run writes `zoo-run.json` (entry + fingerprint) into its folder before any other file. A folder
without it holds someone else's files; a folder whose fingerprint names another entry holds another
run. Neither is written into without `--overwrite`, and `--resume` continues only a run with the same
fingerprint (entry, recipe, data, sample counts and the options that change results).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from zoo.errors import CacheError, UsageError
from zoo.hub.lock import FileLock
from zoo.outdir import prepare_out
from zoo.fsutil import SCRATCH_SUFFIX, atomic_write_text, clean_stale_scratch
from zoo.schema import Recipe

RUN_FILE = "zoo-run.json"
RUN_LOCK = ".zoo-run.lock"  # held while a run writes into the folder: one run at a time
FORMAT = 1


@contextlib.contextmanager
def holding(out: Path, entry: str) -> Iterator[None]:
    """Hold `out` for one run: a second run into the same folder is refused while this one lasts
    (the lock goes with the process, even a killed one)."""
    out = prepare_out(out)  # a file, a read-only or unwritable place: named before anything starts
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create --out {out}: {exc.strerror}", hint="Pick a folder you can write.") from None
    lock = FileLock(out / RUN_LOCK, timeout=0)
    try:
        lock.acquire()
    except CacheError:
        holder = lock._holder()
        raise UsageError(f"another run is writing into {out} (process {holder}); two runs would overwrite each "
                         "other's stages", hint=f"Wait for it, or give this run of {entry} another --out.") from None
    try:
        yield
    finally:
        lock.release()


def recipe_hash(recipe: Recipe) -> str:
    """sha256 of the recipe's validated content (formatting and key order do not matter)."""
    text = json.dumps(recipe.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_run(out: Path) -> Optional[Dict[str, Any]]:
    """The run record of `out`, or None when there is none (or it is unreadable)."""
    try:
        record = json.loads((Path(out) / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "entry" in record else None


def _differences(before: Dict[str, Any], now: Dict[str, Any]) -> List[str]:
    keys = sorted(set(before) | set(now))
    return [f"{k}: was {before.get(k)!r}, now {now.get(k)!r}" for k in keys if before.get(k) != now.get(k)]


def _listing(names: List[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_out(out: Path, entry: str, overwrite: bool) -> Optional[Dict[str, Any]]:
    """Refuse an `out` that is a file, holds files the zoo did not write, or holds another entry's run.

    Cleans scratch folders a killed run left there; returns the run record found (None if none).
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder", hint="Pass a folder (it is created if missing).")
    if not out.is_dir():
        return None
    clean_stale_scratch(out)
    present = sorted(p.name for p in out.iterdir() if not p.name.endswith(SCRATCH_SUFFIX) and p.name != RUN_LOCK)
    record = read_run(out)
    if present and record is None and not overwrite:
        raise UsageError(
            f"{out} holds files the zoo did not write ({_listing(present)})",
            hint="Pick a new or empty folder with --out, or add --overwrite to write the zoo's outputs "
                 "(fp32/, int8/, checkpoints/, reports) into it; other files are left alone.",
        )
    if record is not None and record.get("entry") != entry and not overwrite:
        raise UsageError(
            f"{out} holds a run of {record.get('entry')}, not {entry}",
            hint="Pick another folder with --out, or add --overwrite to replace that run.",
        )
    return record


def claim(out: Path, entry: str, fingerprint: Dict[str, Any], resume: bool, overwrite: bool) -> bool:
    """Check that this run may use `out` (see check_out), then record the run there.

    Returns True when an earlier run with the same fingerprint is being resumed; `--resume` against a
    run made with other settings raises UsageError saying what differs (nothing is written then).
    """
    record = check_out(out, entry, overwrite)
    resuming = False
    if resume and record is not None and record.get("entry") == entry and record.get("fingerprint"):
        differs = _differences(record.get("fingerprint", {}), fingerprint)
        if differs:
            raise UsageError(
                f"cannot resume the run in {out}: it was made with other settings ({'; '.join(differs)})",
                hint="Resume with the same data and options, or drop --resume to start over.",
            )
        resuming = True
    atomic_write_text(Path(out) / RUN_FILE, json.dumps({"format": FORMAT, "entry": entry, "fingerprint": fingerprint},
                                                       indent=2) + "\n")
    return resuming


def reserve(out: Path, entry: str, overwrite: bool) -> None:
    """Check `out` (see check_out) and mark it as this entry's before a distributed run starts its ranks.

    An existing record of the same entry is kept, so rank 0 can still check a `--resume` against it.
    """
    record = check_out(out, entry, overwrite)
    if record is None or record.get("entry") != entry:
        atomic_write_text(Path(out) / RUN_FILE, json.dumps({"format": FORMAT, "entry": entry, "fingerprint": {}}) + "\n")
