"""Where tuneloop keeps files that outlive one command (converted models, locks)."""

import os
from pathlib import Path

CACHE_ENV = "TUNELOOP_CACHE_DIR"


def cache_dir() -> Path:
    """The cache root: $TUNELOOP_CACHE_DIR, else $XDG_CACHE_HOME/tuneloop, else ~/.cache/tuneloop"""
    if explicit := os.environ.get(CACHE_ENV):
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return root / "tuneloop"


def models_cache_dir() -> Path:
    """Folder holding converted model folders, one per alias."""
    return cache_dir() / "models"
