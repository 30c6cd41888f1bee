"""The folders the optimize stage writes, and their manifest `tuneloop_artifact.json`.

The manifest is the contract with `tuneloop serve --model-dir` (see DEVELOPERS.md, "Files that
pass between stages"): `serve` loads only variants whose `gate.status` is not `failed`. Every
folder is built in a temporary sibling and renamed into place, so an interrupted command never
leaves a half-written artifact that looks complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tuneloop import __version__
from tuneloop.errors import ModelNotFoundError, UsageError

ARTIFACT_FILE = "tuneloop_artifact.json"
FORMAT = 1
GATE_STATUSES = ("passed", "failed", "reference")
# Until `verify` has judged it, a new variant counts as failed: `serve` must never pick up an
# artifact nobody has checked.
NOT_VERIFIED = "not verified yet: run `tuneloop optimize verify`"
# Reports are rewritten by `verify`; hashing them would make the manifest stale at once.
UNHASHED = {ARTIFACT_FILE, "verify.json", "verify.md", "verify.png"}


def check_out_dir(out: Path, force: bool) -> None:
    """Refuse to overwrite an existing, non-empty output folder unless `force` is set."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UsageError(f"--out {out} already exists and is not empty; pass --force to replace it")


@contextlib.contextmanager
def staged_dir(out: Path, force: bool) -> Iterator[Path]:
    """Yield a temporary folder next to `out`; on success it replaces `out` in one rename."""
    out = Path(out)
    check_out_dir(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield staging
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file of the artifact (relative paths), reports and manifest excepted."""
    folder = Path(folder)
    return {
        str(p.relative_to(folder)): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in UNHASHED
    }


def folder_size(folder: Path, pattern: str = "*") -> int:
    """Bytes of the model files of a folder (what a deployment ships)."""
    return sum(p.stat().st_size for p in Path(folder).rglob(pattern) if p.is_file())


def write_artifact(
    folder: Path,
    *,
    name: str,
    variant: str,
    backend: str,
    precision: str,
    source: dict,
    gate_status: str = "failed",
    extra: dict | None = None,
) -> dict:
    """Write `tuneloop_artifact.json` into `folder` with the hashes of its files."""
    if gate_status not in GATE_STATUSES:
        raise ValueError(f"gate status {gate_status!r} is not one of {GATE_STATUSES}")
    manifest = {
        "format": FORMAT,
        "name": name,
        "variant": variant,
        "backend": backend,
        "precision": precision,
        "gate": {
            "status": gate_status,
            "thresholds": {},
            "failures": [NOT_VERIFIED] if gate_status == "failed" else [],
        },
        "source": source,
        "tuneloop_version": __version__,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(extra or {}),
        "files": file_hashes(folder),
    }
    save_json(Path(folder) / ARTIFACT_FILE, manifest)
    return manifest


def read_artifact(folder: Path) -> dict:
    """The manifest of an artifact folder; a folder without one gets a minimal stand-in."""
    path = Path(folder) / ARTIFACT_FILE
    if not Path(folder).is_dir():
        raise ModelNotFoundError(f"{folder}: no such model folder")
    if not path.is_file():
        return {"format": FORMAT, "name": Path(folder).name, "variant": "", "source": {}}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc


def set_gate(folder: Path, status: str, thresholds: dict, failures: list[str]) -> dict:
    """Record a gate verdict in the artifact's manifest (what `serve` reads)."""
    manifest = read_artifact(folder)
    manifest["gate"] = {"status": status, "thresholds": thresholds, "failures": failures}
    save_json(Path(folder) / ARTIFACT_FILE, manifest)
    return manifest


def save_json(path: Path, value) -> None:
    """Write JSON atomically (temporary file + rename), so a reader never sees half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def servable_variants(model_dir: Path) -> list[str]:
    """Variant folders of an optimized folder that `serve` may load: any whose gate did not
    fail (passed, reference), recommended first. A variant that failed, or whose manifest is
    missing or unreadable, is never served."""
    model_dir = Path(model_dir)
    summary_path = model_dir / "summary.json"
    recommended = None
    if summary_path.is_file():
        recommended = json.loads(summary_path.read_text(encoding="utf-8")).get("recommended")
    names = []
    for folder in sorted(p for p in model_dir.iterdir() if (p / ARTIFACT_FILE).is_file()):
        try:
            status = json.loads((folder / ARTIFACT_FILE).read_text(encoding="utf-8"))["gate"]
        except (json.JSONDecodeError, KeyError):
            continue
        if status.get("status") in ("passed", "reference"):
            names.append(folder.name)
    return sorted(names, key=lambda name: name != recommended)
