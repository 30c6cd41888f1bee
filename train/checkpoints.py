"""Checkpoints that are only ever used when complete.

The Trainer writes a checkpoint as several files (adapter, optimizer, scheduler, RNG states,
trainer state). A kill in the middle leaves a folder that looks like a checkpoint but is not.
So a checkpoint counts only once its `COMPLETE` marker exists; the marker is written to a
temporary name, flushed to disk and renamed (atomic on POSIX), after every other file is
flushed too. `--resume` takes the newest complete checkpoint and moves incomplete ones aside.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

MARKER = "COMPLETE"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def mark_complete(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            _fsync(path)
    tmp = folder / f".{MARKER}.tmp"
    tmp.write_text(json.dumps({"step": _step(folder)}))
    _fsync(tmp)
    tmp.replace(folder / MARKER)
    _fsync_dir(folder)


def is_complete(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def checkpoints(root: Path) -> list[Path]:
    """Checkpoint folders under `root`, oldest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _CHECKPOINT.match(p.name)]
    return sorted(found, key=_step)


def latest_complete(root: Path) -> Path | None:
    """The newest complete checkpoint; incomplete ones are moved to `incomplete-*` folders."""
    latest = None
    for folder in checkpoints(root):
        if is_complete(folder):
            latest = folder
        else:
            aside = folder.with_name(f"incomplete-{folder.name}")
            shutil.rmtree(aside, ignore_errors=True)
            folder.rename(aside)
            log.warning("%s was not completely written (killed while saving?); set aside", folder)
    return latest


def _step(folder: Path) -> int:
    match = _CHECKPOINT.match(folder.name)
    return int(match.group(1)) if match else -1


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    # some filesystems cannot fsync a directory; the rename is atomic all the same
    with contextlib.suppress(OSError):
        _fsync(path)
