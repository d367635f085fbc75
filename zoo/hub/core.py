"""fetch(): resolve a recipe artifact to a verified file or extracted folder in the cache."""
from __future__ import annotations

import errno
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Tuple, Union
from urllib.parse import unquote, urlsplit

from zoo.errors import ArchiveError, ChecksumError, DownloadError, ModelError, OfflineError, UsageError
from zoo import manifest
from zoo.hub import archive as arc
from zoo.home import cache_home
from zoo.hub.config import Settings, mirror_from_env, offline
from zoo.hub.download import discard_partial, download
from zoo.hub.mirror import candidates
from zoo.hub.progress import bar
from zoo.fsutil import StagedDir, hash_file
from zoo.hub.store import Store, now, wrap_os_error
from zoo.modelfiles import find_model_files
from zoo.schema import Artifact, Recipe, Role
import zoo.assets


@dataclass(frozen=True)
class FetchedArtifact:
    """A ready artifact. `path`: the model folder for archives, else the file itself.
    `archive`: the verified archive file the folder came from (None for a plain file)."""

    role: Role
    url: str
    path: Path
    archive: Optional[Path]
    sha256: str
    size: int


def artifact_ref(art: Artifact) -> str:
    """The stable identity of an artifact in the pins file: its first registry URL (or bundled path)."""
    return art.urls[0] if art.urls else f"bundled:{art.bundled}"


def artifact_key(art: Artifact) -> str:
    """A file-name-safe key for the artifact's lock and partial files."""
    ident = "\n".join(art.urls) if art.urls else f"bundled:{art.bundled}"
    return hashlib.sha256(ident.encode()).hexdigest()[:20]


def file_name(art: Artifact) -> str:
    """The artifact's file name as published."""
    if art.bundled:
        return Path(art.bundled).name
    name = unquote(urlsplit(art.urls[0]).path.rsplit("/", 1)[-1])
    return name or "artifact"


def assets_dir() -> Path:
    return Path(list(zoo.assets.__path__)[0])


def _resolve_role(recipe: Recipe, role: Union[Role, str, None]) -> Role:
    if role is None:
        return recipe.default_artifact
    try:
        role = Role(role)
    except ValueError:
        raise UsageError(f"unknown artifact role {role!r}", hint=f"Use one of: {', '.join(r.value for r in Role)}.") from None
    if role not in recipe.artifacts:
        have = ", ".join(r.value for r in recipe.artifacts)
        raise UsageError(f"{recipe.name} has no {role.value!r} artifact", hint=f"It has: {have}.")
    return role


def _expected(art: Artifact, pin: Optional[dict]) -> Tuple[Optional[str], Optional[int], str]:
    """(sha256, size, where from) the download must match; the registry wins over a pin."""
    if art.sha256:
        return art.sha256, art.size, "the registry"
    if pin:
        size = art.size if art.size is not None else pin.get("size")
        return pin.get("sha256"), size, f"the pin recorded on {pin.get('time', 'first download')}"
    return None, art.size, "the registry"


def _check(label: str, url: str, got: Tuple[str, str, int], art: Artifact, pin: Optional[dict]) -> None:
    """ChecksumError when the bytes differ from the registry or the pin."""
    sha, md5, size = got
    want_sha, want_size, origin = _expected(art, pin)
    problems = []
    if want_size is not None and size != want_size:
        problems.append(f"size {size} bytes, expected {want_size}")
    if want_sha is not None and sha != want_sha:
        problems.append(f"sha256 {sha}, expected {want_sha} (from {origin})")
    if art.md5 is not None and md5 != art.md5:
        problems.append(f"md5 {md5}, expected {art.md5} (from the registry)")
    if problems:
        raise ChecksumError(f"checksum mismatch for {label} from {url}: " + "; ".join(problems))


def _extraction(store: Store, sha: str) -> Optional[Path]:
    """The model folder of a finished extraction of these bytes, or None (none, or cut short:
    the metadata file is written last, inside the staging folder)."""
    dest = store.extracted / sha
    if not dest.is_dir():
        return None
    folder = arc.model_folder(dest)
    return folder if (folder / arc.META_NAME).is_file() else None


def _check_model(folder: Path, art: Artifact) -> None:
    """ArchiveError when an archive published as an inference model unpacked without one: its
    users (eval, export, reproduce) would fail later with a less useful message."""
    if not art.layout.is_inference_model:
        return
    try:
        find_model_files(folder)
    except ModelError:
        held = sorted(p.name for p in folder.iterdir() if p.name != arc.META_NAME)
        shown = ", ".join(held[:6]) + (", ..." if len(held) > 6 else "") if held else "nothing"
        raise ArchiveError(
            f"{file_name(art)}: unpacked, but holds no Paddle inference model (no *.pdmodel, __model__ or "
            f"model file; its model folder has: {shown}); the recipe says layout {art.layout.value}",
            hint="The URL serves another file than the recipe describes; check the recipe's urls and layout.",
        ) from None


def _unpack(store: Store, source: Path, sha: str, size: int, url: str, art: Artifact, label: str,
            replace: bool = False) -> Path:
    """Extract the verified archive bytes at `source` into extracted/<sha>; return the model folder.

    A finished extraction of the same bytes is reused unless `replace`, or unless its files no longer
    match the manifest written when it was unpacked: then it is unpacked again from `source`, whose bytes
    are checked first. ArchiveError (refused, corrupt, or no model inside) leaves nothing behind.
    """
    if not replace:
        done = _extraction(store, sha)
        if done is not None:
            if not extraction_problems(done):
                return done
            _require_bytes(source, sha, label)  # re-extracting damaged bytes would only hide the damage
    dest = store.extracted / sha
    try:
        with StagedDir(dest, parent=store.tmp) as stage:  # in the cache's tmp/: swept there if the process dies
            arc.extract(source, stage.path, name=file_name(art))
            folder = arc.model_folder(stage.path)
            renamed = arc.normalize_legacy(folder)
            _check_model(folder, art)
            arc.write_metadata(folder, {
                "artifact": label, "url": url, "archive": file_name(art), "sha256": sha, "size": size,
                "layout": art.layout.value, "renamed": renamed, "extracted": now(),
                "files": manifest.build(folder, exclude=(arc.META_NAME,)),
            })
            stage.commit(park=store.staging("old"))  # an older extraction is parked in the cache tmp/
    except OSError as exc:
        if not (exc.errno in (errno.ENOTEMPTY, errno.EEXIST) and _extraction(store, sha) is not None):
            raise wrap_os_error(exc, f"extracting {file_name(art)}") from exc
        # another entry with the same bytes finished extracting first: use its folder
    return arc.model_folder(dest)


def extraction_problems(folder: Path, full: bool = False) -> List[str]:
    """How an extracted model folder differs from the manifest written when it was unpacked (empty: intact)."""
    return manifest.problems(folder, manifest.read(folder / arc.META_NAME), exclude=(arc.META_NAME,), full=full)


def _require_bytes(source: Path, sha: str, label: str) -> None:
    """ChecksumError unless the stored archive still hashes to `sha`."""
    got = hash_file(source)[0]
    if got != sha:
        raise ChecksumError(
            f"the cached files of {label} are damaged: its extraction no longer matches its manifest, and the "
            f"stored archive {source} hashes to {got}, not {sha}",
            hint=f"Fetch it again: `zoo fetch {label.split('/')[0]} --what {label.split('/')[-1]} --force`.")


def _fetch_bundled(recipe: Recipe, role: Role, art: Artifact, label: str, force: bool) -> FetchedArtifact:
    src = assets_dir() / str(art.bundled)
    if not src.is_file():
        raise DownloadError(f"bundled artifact {art.bundled} of {label} is missing from {assets_dir()}",
                            hint="Reinstall the zoo package (`pip install -e .` in a checkout).")
    got = hash_file(src)
    _check(label, str(src), got, art, None)
    sha, _md5, size = got
    if arc.archive_kind(src.name) is None:
        return FetchedArtifact(role, f"bundled:{art.bundled}", src, None, sha, size)
    store = Store(cache_home())
    store.ensure()
    url = f"bundled:{art.bundled}"
    with store.lock(artifact_key(art), Settings.from_env().lock_timeout):
        folder = _unpack(store, src, sha, size, url, art, label, replace=force)
    return FetchedArtifact(role, url, folder, src, sha, size)


def _cached(store: Store, art: Artifact, pin: Optional[dict]) -> Optional[Tuple[Path, str]]:
    """(blob, url) of an already verified copy, or None."""
    want_sha, want_size, _origin = _expected(art, pin)
    if want_sha is None:
        return None
    blob = store.find_blob(want_sha, file_name(art))
    if blob is None or (want_size is not None and blob.stat().st_size != want_size):
        return None  # a truncated copy is not a hit; `zoo cache verify` finds subtler damage
    url = (pin or {}).get("url") or art.urls[0]
    return blob, url


def _record(store: Store, art: Artifact, sha: str, size: int, md5: str, filename: str, url: str, label: str) -> None:
    """Pin these bytes for the artifact; called only once every check passed (and, for an archive,
    once it unpacked into a model folder)."""
    ref = artifact_ref(art)

    def change(pins: dict) -> None:
        entry = pins.get(ref, {})
        names = sorted(set(entry.get("names", [])) | {label})
        source = "registry" if art.sha256 else "first-download"
        keep_time = entry.get("time") if entry.get("sha256") == sha else None
        pins[ref] = {"sha256": sha, "size": size, "md5": md5, "file": filename, "url": url,
                     "names": names, "source": source, "time": keep_time or now()}
        if arc.archive_kind(file_name(art)) is not None:
            pins[ref]["extracted"] = True

    store.update_pins(change)


def _drop_pin(store: Store, ref: str, sha: Optional[str]) -> None:
    """Forget a pin, and the stored bytes it vouched for unless another pin still names them."""
    def change(pins: dict) -> None:
        if (pins.get(ref) or {}).get("sha256") == sha:
            pins.pop(ref, None)

    pins = store.update_pins(change)
    if sha and not any(p.get("sha256") == sha for p in pins.values()):
        store.remove_content(sha)


def _settle_old_pin(store: Store, ref: str, pin: dict, art: Artifact, label: str, force: bool) -> Optional[dict]:
    """The pin of an archive written before pins waited for extraction (no `extracted` mark).

    Kept and marked when its bytes unpack (from the extraction or the stored file); dropped when
    its stored file does not unpack, so the next download is judged afresh; dropped under `force`
    when nothing on disk shows it ever produced a model folder. Returns the pin to enforce, or None.
    """
    sha = pin.get("sha256")
    usable = bool(sha) and _extraction(store, sha) is not None
    broken = False
    if sha and not usable:
        blob = store.find_blob(sha, file_name(art))
        if blob is not None and hash_file(blob)[0] == sha:
            try:
                _unpack(store, blob, sha, blob.stat().st_size, pin.get("url") or ref, art, label)
                usable = True
            except ArchiveError:
                broken = True
    if usable:
        def mark(pins: dict) -> None:
            if (pins.get(ref) or {}).get("sha256") == sha:
                pins[ref]["extracted"] = True

        store.update_pins(mark)
        return {**pin, "extracted": True}
    if broken or force:
        _drop_pin(store, ref, sha)
        return None
    return pin  # nothing on disk to judge it by: the next download must still match it


def fetch(recipe: Recipe, role: Union[Role, str, None] = None, *, force: bool = False,
          mirror: Optional[str] = None, progress: bool = False) -> FetchedArtifact:
    """Make one artifact of `recipe` ready on disk and return where it is.

    role None = recipe.default_artifact. Bundled artifacts are verified and extracted without any
    network. Downloads use ZOO_MIRROR (or `mirror`), resume, retry, verify size/sha256/md5 against
    the registry or the pin recorded on first download, then extract archives safely; the pin is
    recorded only after all of that passed.
    """
    role = _resolve_role(recipe, role)
    art = recipe.artifacts[role]
    label = f"{recipe.name}/{role.value}"
    if art.bundled:
        return _fetch_bundled(recipe, role, art, label, force)

    settings = Settings.from_env()
    store = Store(cache_home())
    store.ensure()
    is_archive = arc.archive_kind(file_name(art)) is not None
    ref = artifact_ref(art)
    with store.lock(artifact_key(art), settings.lock_timeout):
        # read inside the lock: a process that held it may just have downloaded and pinned the file
        pin = store.read_pins().get(ref)
        if pin is not None and is_archive and not pin.get("extracted"):
            pin = _settle_old_pin(store, ref, pin, art, label, force)
        hit = None if force else _cached(store, art, pin)
        if hit is not None:
            return _from_cache(store, recipe, role, art, label, pin, hit, is_archive)
        if offline():
            raise OfflineError(
                f"offline (ZOO_OFFLINE=1) and {label} ({file_name(art)}) is not in the cache at {store.home}",
                hint=f"Unset ZOO_OFFLINE to download it, or run `zoo fetch {recipe.name} --what {role.value}` on a "
                     f"connected machine and copy its cache folder (ZOO_HOME) to {store.home}.",
            )
        got, digest = _download_checked(store, recipe, art, label, pin, settings, mirror, progress)
        return _keep_download(store, role, art, label, ref, pin, got, digest, is_archive, force)


def _from_cache(store: Store, recipe: Recipe, role: Role, art: Artifact, label: str, pin: Optional[dict],
                hit: Tuple[Path, str], is_archive: bool) -> FetchedArtifact:
    """A cached blob, unpacked when it is an archive, pinned under this entry's name too."""
    blob, url = hit
    sha, size = blob.parent.name, blob.stat().st_size
    path = blob
    if is_archive:
        try:
            path = _unpack(store, blob, sha, size, url, art, label)
        except ArchiveError as exc:
            raise ArchiveError(
                f"{exc.message} (the cached copy {blob})",
                hint=f"`zoo cache verify` checks the cached copy; `zoo fetch {recipe.name} --what {role.value} "
                     "--force` downloads and checks it again.") from exc
    if pin is None or label not in pin.get("names", []):
        sha, md5, size = hash_file(blob)  # another entry fetched these bytes: record this one too
        _check(label, url, (sha, md5, size), art, pin)
        _record(store, art, sha, size, md5, blob.name, url, label)
    return FetchedArtifact(role, url, path, blob if is_archive else None, sha, size)


def _download_checked(store: Store, recipe: Recipe, art: Artifact, label: str, pin: Optional[dict],
                      settings: Settings, mirror: Optional[str], progress: bool) -> Tuple[Any, Tuple[str, str, int]]:
    """Download the artifact and check its size and digests; a resumed download that fails the check
    is tried once more from zero (the bytes kept from an earlier run may be stale)."""
    urls = candidates(art.urls, mirror_from_env(mirror))
    _want_sha, want_size, _origin = _expected(art, pin)
    for attempt in range(2):
        with bar(f"{recipe.name} {file_name(art)}", progress) as b:
            got = download(urls, store.partial, artifact_key(art), label, settings, want_size, b.wrap if b else None)
        try:
            digest = hash_file(got.path)
        except OSError as exc:
            raise wrap_os_error(exc, f"reading {got.path}") from exc
        try:
            _check(label, got.url, digest, art, pin)
            return got, digest
        except ChecksumError:
            discard_partial(got.path)
            if not (got.resumed and attempt == 0):
                raise
    raise AssertionError("unreachable: the second attempt returns or raises")


def _keep_download(store: Store, role: Role, art: Artifact, label: str, ref: str, pin: Optional[dict], got: Any,
                   digest: Tuple[str, str, int], is_archive: bool, force: bool) -> FetchedArtifact:
    """Unpack a checked download (archives), move it into blobs/ and pin it, in that order."""
    sha, md5, size = digest
    path = blob = store.blob(sha, file_name(art))
    if is_archive:
        # unpacked from the download itself: bytes that do not give a model folder never reach blobs/
        try:
            path = _unpack(store, got.path, sha, size, got.url, art, label, replace=force)
        except ArchiveError as exc:
            discard_partial(got.path)
            if pin is not None and pin.get("sha256") == sha:
                _drop_pin(store, ref, sha)  # pinned bytes that do not unpack vouch for nothing
            raise ArchiveError(f"{exc.message}; downloaded from {got.url}",
                               hint=f"Nothing from this download was kept or pinned. {exc.hint}") from exc
    try:
        blob.parent.mkdir(parents=True, exist_ok=True)
        os.replace(got.path, blob)
        discard_partial(got.path)
    except OSError as exc:
        discard_partial(got.path)
        raise wrap_os_error(exc, f"moving the download into {blob.parent}") from exc
    _record(store, art, sha, size, md5, blob.name, got.url, label)
    return FetchedArtifact(role, got.url, path, blob if is_archive else None, sha, size)
