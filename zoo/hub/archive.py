"""Safe extraction of .tar, .tar.gz/.tgz and .zip archives, and legacy model-name normalization.

Every member is checked before anything is written: absolute paths, `..`, symlinks, hardlinks,
devices and fifos are refused. Extraction goes into a staging folder that the caller moves into
place, so a refused or corrupt archive leaves nothing behind.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from zoo.errors import ArchiveError

META_NAME = "zoo-artifact.json"
_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
# (legacy model name, legacy params name) -> normalized names
_LEGACY = (("__model__", "__params__"), ("model", "params"))
_NORMALIZED = ("inference.pdmodel", "inference.pdiparams")


def archive_kind(filename: str) -> Optional[str]:
    """'tar' or 'zip' from a file name, None when it is not an archive we extract."""
    low = filename.lower()
    if low.endswith((".tar", ".tar.gz", ".tgz")):
        return "tar"
    if low.endswith(".zip"):
        return "zip"
    return None


def _safe_name(name: str, archive: Path) -> str:
    """The member's normalized relative path; ArchiveError when it could escape the folder."""
    if "\\" in name or "\x00" in name:
        raise ArchiveError(f"{archive.name}: member {name!r} has a backslash or NUL in its name; refused")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"{archive.name}: member {name!r} has an absolute path; refused")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"{archive.name}: member {name!r} climbs out with '..'; refused")
    return "/".join(parts)


def _tar_plan(tf: tarfile.TarFile, archive: Path) -> List[Tuple[tarfile.TarInfo, str]]:
    plan = []
    for m in tf.getmembers():
        rel = _safe_name(m.name, archive)
        if m.issym() or m.islnk():
            kind = "symlink" if m.issym() else "hardlink"
            raise ArchiveError(f"{archive.name}: member {m.name!r} is a {kind} (to {m.linkname!r}); refused")
        if m.ischr() or m.isblk() or m.isfifo() or m.isdev():
            raise ArchiveError(f"{archive.name}: member {m.name!r} is a device or fifo; refused")
        if not (m.isfile() or m.isdir()):
            raise ArchiveError(f"{archive.name}: member {m.name!r} is not a regular file or folder; refused")
        if rel:
            plan.append((m, rel))
    return plan


def _zip_plan(zf: zipfile.ZipFile, archive: Path) -> List[Tuple[zipfile.ZipInfo, str]]:
    plan = []
    for info in zf.infolist():
        rel = _safe_name(info.filename, archive)
        kind = stat.S_IFMT(info.external_attr >> 16)  # 0: no Unix type recorded (a plain file)
        if kind == stat.S_IFLNK:
            raise ArchiveError(f"{archive.name}: member {info.filename!r} is a symlink; refused")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise ArchiveError(f"{archive.name}: member {info.filename!r} is a device or fifo; refused")
        if rel:
            plan.append((info, rel))
    return plan


def extract(archive: Path, staging: Path) -> None:
    """Extract `archive` into the empty folder `staging`; ArchiveError (and nothing written) if refused."""
    kind = archive_kind(archive.name)
    staging.mkdir(parents=True, exist_ok=False)
    try:
        if kind == "tar":
            _extract_tar(archive, staging)
        elif kind == "zip":
            _extract_zip(archive, staging)
        else:
            raise ArchiveError(f"{archive.name}: not a .tar, .tar.gz, .tgz or .zip archive")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_member(src, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_dir() or dest.is_symlink():
        raise ArchiveError(f"member {dest.name!r} collides with a folder of the same name; refused")
    with open(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    os.chmod(dest, 0o644)


def _extract_tar(archive: Path, staging: Path) -> None:
    try:
        with tarfile.open(archive, "r:*") as tf:
            plan = _tar_plan(tf, archive)
            for member, rel in plan:
                dest = staging / rel
                if member.isdir():
                    if dest.exists() and not dest.is_dir():
                        raise ArchiveError(f"{archive.name}: folder {rel!r} collides with a file; refused")
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                src = tf.extractfile(member)
                if src is None:
                    raise ArchiveError(f"{archive.name}: member {member.name!r} cannot be read")
                with src:
                    _write_member(src, dest)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise
        raise ArchiveError(f"{archive.name}: corrupt or truncated tar archive ({exc})",
                           hint="Fetch it again with --force; if that fails too, the file on the server is broken.") from exc


def _extract_zip(archive: Path, staging: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            plan = _zip_plan(zf, archive)
            for info, rel in plan:
                dest = staging / rel
                if info.is_dir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                with zf.open(info) as src:
                    _write_member(src, dest)
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise ArchiveError(f"{archive.name}: corrupt zip archive ({exc})",
                           hint="Fetch it again with --force; if that fails too, the file on the server is broken.") from exc


def model_folder(root: Path) -> Path:
    """The folder that holds the model: the single top-level folder of the archive, else the root."""
    if (root / META_NAME).exists():
        return root
    entries = [p for p in root.iterdir() if not p.name.startswith(".zoo")]
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        return entries[0]
    return root


def normalize_legacy(folder: Path) -> Dict[str, str]:
    """Rename legacy model/params pairs to inference.pdmodel/.pdiparams in every sub-folder.

    Only complete pairs are renamed: a lone `__model__` belongs to a one-file-per-variable folder
    that Paddle loads by folder name. Returns {new relative path: original relative path}.
    """
    renamed: Dict[str, str] = {}
    for dirpath, _dirs, files in os.walk(folder):
        here = Path(dirpath)
        names = set(files)
        if _NORMALIZED[0] in names or _NORMALIZED[1] in names:
            continue
        for model_name, params_name in _LEGACY:
            if model_name in names and params_name in names:
                for old, new in zip((model_name, params_name), _NORMALIZED):
                    os.replace(here / old, here / new)
                    renamed[str((here / new).relative_to(folder))] = str((here / old).relative_to(folder))
                break
    return renamed


def write_metadata(folder: Path, data: dict) -> None:
    """The artifact's provenance and original file names, next to the model."""
    (folder / META_NAME).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
