"""Download, cache, verify and unpack zoo artifacts.

    fetch(recipe, role=None, *, force=False, mirror=None, progress=False) -> FetchedArtifact
    cache_home() -> Path
    verified_pdparams(path) -> Path     refuse a pickle whose hash is neither pinned nor published
"""
from zoo.home import cache_home
from zoo.hub.config import offline
from zoo.hub.core import FetchedArtifact, fetch, hash_file
from zoo.hub.trust import verified_pdparams

__all__ = ["FetchedArtifact", "cache_home", "fetch", "hash_file", "offline", "verified_pdparams"]
