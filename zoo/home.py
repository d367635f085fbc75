"""Where the zoo keeps what it downloads and generates (one place, read by the hub and the data readers)."""
from __future__ import annotations

import os
from pathlib import Path


def cache_home() -> Path:
    """ZOO_HOME, else $XDG_CACHE_HOME/zoo, else ~/.cache/zoo."""
    home = os.environ.get("ZOO_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "zoo"
