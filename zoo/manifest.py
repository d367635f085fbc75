"""A folder's file manifest: each file's size and sha256, recorded when the zoo writes the folder (an
extracted artifact, a generated dataset) and checked before the folder is used again.

A download is verified against the registry or its pin, but the files Paddle and the readers then load
are the extracted or generated ones, so they carry their own manifest. A folder is hashed in full the
first time a process checks it; after that, again only when a file's size or mtime changed.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Collection, Dict, List, Optional, Tuple

from zoo.fsutil import hash_file

Manifest = Dict[str, Dict[str, object]]  # relative path -> {"sha256", "size"}
Signature = Tuple[Tuple[str, int, int], ...]

_checked: Dict[str, Signature] = {}  # folder -> stat signature at its last clean check in this process
_lock = threading.Lock()


def _files(folder: Path, exclude: Collection[str]) -> List[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.relative_to(folder).as_posix() not in exclude)


def build(folder: Path, exclude: Collection[str] = ()) -> Manifest:
    """The manifest of every file under `folder` but the `exclude`d relative paths (where it is stored)."""
    out: Manifest = {}
    for path in _files(folder, exclude):
        sha, _md5, size = hash_file(path)
        out[path.relative_to(folder).as_posix()] = {"sha256": sha, "size": size}
    return out


def read(json_file: Path, key: str = "files") -> Optional[Manifest]:
    """The manifest stored under `key` of a JSON file, or None (absent, unreadable, or written before manifests)."""
    try:
        data = json.loads(json_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = data.get(key) if isinstance(data, dict) else None
    return files if isinstance(files, dict) else None


def _signature(folder: Path, exclude: Collection[str]) -> Signature:
    out = []
    for path in _files(folder, exclude):
        st = path.stat()
        out.append((path.relative_to(folder).as_posix(), st.st_size, st.st_mtime_ns))
    return tuple(out)


def problems(folder: Path, manifest: Optional[Manifest], exclude: Collection[str] = (), *,
             full: bool = False) -> List[str]:
    """How `folder` differs from `manifest` (empty: intact). `full` hashes every file even when this process
    already checked the folder and nothing changed since (what `zoo cache verify` asks)."""
    if manifest is None:
        return ["it has no file manifest (written by an older zoo, or its metadata is damaged)"]
    try:
        signature = _signature(folder, exclude)
    except OSError as exc:
        return [f"cannot read it: {exc.strerror}"]
    key = str(folder.resolve())
    with _lock:
        if not full and _checked.get(key) == signature:
            return []
    found = []
    present = {name for name, _size, _mtime in signature}
    for name, want in sorted(manifest.items()):
        if name not in present:
            found.append(f"{name} is missing")
            continue
        sha, _md5, size = hash_file(folder / name)
        if size != want.get("size"):
            found.append(f"{name} is {size} bytes, written as {want.get('size')}")
        elif sha != want.get("sha256"):
            found.append(f"{name} hashes to {sha[:16]}, written as {str(want.get('sha256'))[:16]}")
    extra = sorted(present - set(manifest))
    if extra:
        found.append(f"files added since: {', '.join(extra[:5])}{', ...' if len(extra) > 5 else ''}")
    with _lock:
        if found:
            _checked.pop(key, None)
        else:
            _checked[key] = signature
    return found
