"""Refuse to unpickle a `.pdparams` file nobody vouched for.

A `.pdparams` file is a pickle, and loading a pickle can run arbitrary code. Only files whose
sha256 matches a pin (recorded when `zoo fetch` verified it) or a checksum in the registry
(sha256, or the md5 the upstream project published) are handed to paddle.load.
"""
from __future__ import annotations

from pathlib import Path

from zoo.errors import ChecksumError
from zoo.home import cache_home
from zoo.hub.core import hash_file
from zoo.hub.store import Store
from zoo.registry import load_registry


def verified_pdparams(path: Path) -> Path:
    """`path` unchanged when its hash is pinned or published; ChecksumError otherwise."""
    path = Path(path)
    sha, md5, _size = hash_file(path)
    if any(pin.get("sha256") == sha for pin in Store(cache_home()).read_pins().values()):
        return path
    for recipe in load_registry().filter():
        for art in recipe.artifacts.values():
            if art.sha256 == sha or (art.sha256 is None and art.md5 == md5):
                return path
    raise ChecksumError(
        f"refusing to load {path}: its sha256 {sha} matches neither a pin in {cache_home()} nor the registry",
        hint="A .pdparams file is a pickle that can run code when loaded; get it with `zoo fetch NAME --what pretrained` "
             "so it is verified and pinned, or add its sha256 to the recipe.",
    )
