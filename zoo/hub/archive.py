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
from zoo.modelfiles import LEGACY_PAIRS

META_NAME = "zoo-artifact.json"  # provenance of an extraction; its `files` key is the manifest
# (legacy model name, legacy params name) -> normalized names
_NORMALIZED = ("inference.pdmodel", "inference.pdiparams")


def archive_kind(filename: str) -> Optional[str]:
    """'tar' or 'zip' from a file name, None when it is not an archive we extract."""
    low = filename.lower()
    if low.endswith((".tar", ".tar.gz", ".tgz")):
        return "tar"
    if low.endswith(".zip"):
        return "zip"
    return None


def _safe_name(name: str, label: str) -> str:
    """The member's normalized relative path; ArchiveError when it could escape the folder."""
    if "\\" in name or "\x00" in name:
        raise ArchiveError(f"{label}: member {name!r} has a backslash or NUL in its name; refused")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"{label}: member {name!r} has an absolute path; refused")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"{label}: member {name!r} climbs out with '..'; refused")
    return "/".join(parts)


def _tar_plan(tf: tarfile.TarFile, label: str) -> List[Tuple[tarfile.TarInfo, str]]:
    plan = []
    for m in tf.getmembers():
        rel = _safe_name(m.name, label)
        if m.issym() or m.islnk():
            kind = "symlink" if m.issym() else "hardlink"
            raise ArchiveError(f"{label}: member {m.name!r} is a {kind} (to {m.linkname!r}); refused")
        if m.ischr() or m.isblk() or m.isfifo() or m.isdev():
            raise ArchiveError(f"{label}: member {m.name!r} is a device or fifo; refused")
        if not (m.isfile() or m.isdir()):
            raise ArchiveError(f"{label}: member {m.name!r} is not a regular file or folder; refused")
        if rel:
            plan.append((m, rel))
    return plan


def _zip_plan(zf: zipfile.ZipFile, label: str) -> List[Tuple[zipfile.ZipInfo, str]]:
    plan = []
    for info in zf.infolist():
        rel = _safe_name(info.filename, label)
        kind = stat.S_IFMT(info.external_attr >> 16)  # 0: no Unix type recorded (a plain file)
        if kind == stat.S_IFLNK:
            raise ArchiveError(f"{label}: member {info.filename!r} is a symlink; refused")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise ArchiveError(f"{label}: member {info.filename!r} is a device or fifo; refused")
        if rel:
            plan.append((info, rel))
    return plan


def extract(archive: Path, staging: Path, name: Optional[str] = None) -> None:
    """Extract `archive` into `staging`, an empty folder (created when missing); ArchiveError (and `staging`
    removed) if refused.

    `name`: the archive's published file name, which decides its kind and names it in errors
    (default: the file's own name; a download is checked before it gets that name).
    """
    label = name or archive.name
    kind = archive_kind(label)
    staging.mkdir(parents=True, exist_ok=True)
    if any(staging.iterdir()):
        raise ArchiveError(f"{label}: cannot extract into {staging}, which is not empty")
    try:
        if kind == "tar":
            _extract_tar(archive, staging, label)
        elif kind == "zip":
            _extract_zip(archive, staging, label)
        else:
            raise ArchiveError(f"{label}: not a .tar, .tar.gz, .tgz or .zip archive")
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


_CORRUPT_HINT = ("The server may have sent an error page or a cut file: try again later, "
                 "or through another mirror (--mirror / ZOO_MIRROR).")


def _not_an_archive(archive: Path, label: str, kind: str) -> ArchiveError:
    """The error for a file that does not even open as an archive, showing how it starts
    (an HTML error page served under the archive's URL is the usual culprit)."""
    with open(archive, "rb") as fh:
        head = fh.read(24)
    return ArchiveError(f"{label}: not a readable {kind} archive ({archive.stat().st_size} bytes starting with {head!r})",
                        hint=_CORRUPT_HINT)


def _extract_tar(archive: Path, staging: Path, label: str) -> None:
    try:
        tf = tarfile.open(archive, "r:*")
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise _not_an_archive(archive, label, "tar") from exc
    try:
        with tf:
            plan = _tar_plan(tf, label)  # our own refusals first: they name the member and why
            # tarfile's `data` filter is the second line: it also refuses what escapes the folder, and
            # drops owners, setuid/setgid/sticky bits and group/other write permission
            tf.extractall(staging, members=[member for member, _ in plan], filter="data")
    except tarfile.FilterError as exc:
        raise ArchiveError(f"{label}: {exc}; refused") from exc
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            if isinstance(exc, (FileExistsError, IsADirectoryError, NotADirectoryError)):
                raise ArchiveError(f"{label}: a member collides with another of the same name ({exc}); refused") from exc
            raise
        raise ArchiveError(f"{label}: corrupt or truncated tar archive ({exc})", hint=_CORRUPT_HINT) from exc


def _extract_zip(archive: Path, staging: Path, label: str) -> None:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise _not_an_archive(archive, label, "zip") from exc
    try:
        with zf:
            plan = _zip_plan(zf, label)
            for info, rel in plan:
                dest = staging / rel
                if info.is_dir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                with zf.open(info) as src:
                    _write_member(src, dest)
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise ArchiveError(f"{label}: corrupt zip archive ({exc})", hint=_CORRUPT_HINT) from exc


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
        for model_name, params_name in LEGACY_PAIRS:
            if model_name in names and params_name in names:
                for old, new in zip((model_name, params_name), _NORMALIZED):
                    os.replace(here / old, here / new)
                    renamed[str((here / new).relative_to(folder))] = str((here / old).relative_to(folder))
                break
    return renamed


def read_metadata(folder: Path) -> dict:
    """The metadata written by write_metadata ({} when absent or unreadable)."""
    try:
        data = json.loads((folder / META_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_metadata(folder: Path, data: dict) -> None:
    """The artifact's provenance and original file names, next to the model."""
    (folder / META_NAME).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
