"""Inspect, verify and clean the artifact cache (`zoo cache ls|verify|clean`).

The cache holds downloads (blobs/, one folder per sha256), their extractions and those of bundled
archives (extracted/<sha256>/, each with a file manifest), and generated datasets (datasets/<name>/,
each with a file manifest). `verify` re-hashes all three.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from zoo.data import MANIFEST_FILE, dataset_problems
from zoo.home import cache_home
from zoo.hub import archive as arc
from zoo.hub.core import artifact_key, artifact_ref, extraction_problems, hash_file
from zoo.hub.store import Store
from zoo.registry import load_registry


@dataclass
class CacheEntry:
    """One item in the cache (a download, an extraction or a generated dataset), with the entries that use it."""

    sha256: str  # a download's or extraction's content hash ("" for a generated dataset)
    path: Path
    size: int
    names: List[str] = field(default_factory=list)
    source: str = "unknown"  # registry | first-download | unknown (not in the pins file)
    url: Optional[str] = None
    extracted: Optional[Path] = None
    kind: str = "download"  # download | extraction | dataset


@dataclass
class VerifyResult:
    entry: CacheEntry
    ok: bool
    problem: Optional[str] = None


def _registry_sha(names: Sequence[str]) -> Dict[str, str]:
    """{name/role: sha256} published in the registry for these labels (unknown names skipped)."""
    out: Dict[str, str] = {}
    registry = load_registry()
    for label in names:
        name, _, role = label.partition("/")
        if name in registry:
            for r, art in registry.get(name).artifacts.items():
                if r.value == role and art.sha256:
                    out[label] = art.sha256
    return out


def list_cache(store: Optional[Store] = None) -> List[CacheEntry]:
    """Every file under blobs/, joined with the pins file."""
    store = store or Store(cache_home())
    pins = store.read_pins()
    by_sha: Dict[str, dict] = {}
    for ref, pin in pins.items():
        by_sha.setdefault(pin.get("sha256", ""), {**pin, "ref": ref})
    entries = []
    for blob in store.iter_blobs():
        sha = blob.parent.name
        pin = by_sha.get(sha, {})
        extracted = store.extracted / sha
        entries.append(CacheEntry(sha, blob, blob.stat().st_size, list(pin.get("names", [])), pin.get("source", "unknown"),
                                  pin.get("url"), extracted if extracted.is_dir() else None))
    return entries


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def list_derived(store: Optional[Store] = None) -> List[CacheEntry]:
    """Every extraction (of a download or a bundled archive) and every generated dataset."""
    store = store or Store(cache_home())
    out = []
    if store.extracted.is_dir():
        for top in sorted(p for p in store.extracted.iterdir() if p.is_dir()):
            folder = arc.model_folder(top)
            meta = arc.read_metadata(folder)
            out.append(CacheEntry(top.name, folder, _size(folder), [str(meta.get("artifact", "?"))], kind="extraction",
                                  url=meta.get("url")))
    datasets = store.home / "datasets"
    if datasets.is_dir():
        for folder in sorted(p for p in datasets.iterdir() if p.is_dir() and (p / MANIFEST_FILE).is_file()):
            out.append(CacheEntry("", folder, _size(folder), [folder.name], source="generated", kind="dataset"))
    return out


def partial_files(store: Optional[Store] = None) -> List[Path]:
    store = store or Store(cache_home())
    return sorted(store.partial.glob("*.part")) if store.partial.is_dir() else []


def verify_cache(store: Optional[Store] = None) -> List[VerifyResult]:
    """Re-hash every download against its name, its pin and the registry, and every extraction and
    generated dataset against the manifest written with it."""
    store = store or Store(cache_home())
    pins = store.read_pins()
    results = []
    for entry in list_cache(store):
        got_sha, _md5, size = hash_file(entry.path)
        problems = []
        if got_sha != entry.sha256:
            problems.append(f"content hashes to {got_sha}, not the {entry.sha256} it was stored under")
        for ref, pin in pins.items():
            if pin.get("sha256") == entry.sha256 and pin.get("size") not in (None, size):
                problems.append(f"size {size} differs from the pinned {pin.get('size')} ({ref})")
        for label, want in _registry_sha(entry.names).items():
            if want != got_sha:
                problems.append(f"registry sha256 of {label} is {want}")
        results.append(VerifyResult(entry, not problems, "; ".join(problems) or None))
    for entry in list_derived(store):
        check = extraction_problems if entry.kind == "extraction" else dataset_problems
        found = check(entry.path, full=True)
        results.append(VerifyResult(entry, not found, "; ".join(found) or None))
    return results


def _clean(store: Store, refs: List[str], shas: set, keys: List[str]) -> List[object]:
    removed: List[object] = []
    pins = store.read_pins()
    shas = set(shas) | {pins[r]["sha256"] for r in refs if r in pins and "sha256" in pins[r]}
    for sha in sorted(shas):
        removed.extend(store.remove_content(sha))
    for key in keys:
        for part in store.partial.glob(f"{key}-*") if store.partial.is_dir() else []:
            part.unlink(missing_ok=True)
            removed.append(part)
    dropped = [r for r in refs if r in pins]

    def change(p: dict) -> None:
        for r in dropped:
            p.pop(r, None)

    if dropped:
        store.update_pins(change)
        removed.extend(f"pin of {r} in {store.pins_file}" for r in dropped)
    return removed


def clean_cache(name: Optional[str] = None, store: Optional[Store] = None) -> List[object]:
    """Remove one entry's files and pins (NAME), or every download, extraction, partial and pin.
    Returns what was removed (paths, and descriptions of dropped pins)."""
    store = store or Store(cache_home())
    if name is not None:
        registry = load_registry()
        if name in registry:
            recipe = registry.get(name)
            arts = list(recipe.artifacts.values())
            return _clean(store, [artifact_ref(a) for a in arts if a.urls], {a.sha256 for a in arts if a.sha256},
                          [artifact_key(a) for a in arts])
        # an entry no longer in the registry: its pins still name it
        refs = [ref for ref, pin in store.read_pins().items()
                if any(label.split("/")[0] == name for label in pin.get("names", []))]
        if not refs:
            registry.get(name)  # raises UnknownNameError with close matches
        return _clean(store, refs, set(), [])
    removed: List[object] = []
    for path in (store.blobs, store.extracted, store.partial, store.tmp, store.pins_file):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        elif path.exists():
            path.unlink()
            removed.append(path)
    return removed
