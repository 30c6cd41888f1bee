"""Read the folder `tuneloop optimize all --out DIR` writes and pick the variants to serve.

Each variant folder carries `tuneloop_artifact.json`; a variant whose quality gate `failed`
is refused (and logged), as is one whose files no longer match the hashes recorded when it
was verified. The rest are served as `NAME:VARIANT`, and `summary.json`'s `recommended`
variant also as plain `NAME`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from tuneloop.errors import ModelLoadError, ModelNotFoundError

log = logging.getLogger(__name__)

ARTIFACT = "tuneloop_artifact.json"
BACKEND_OF = {"onnx": "onnx", "torch": "torch"}


@dataclass(frozen=True)
class Variant:
    name: str
    """The adapter's name, served as the bare model id for the recommended variant."""
    variant: str
    backend: str
    precision: str
    folder: Path
    gate: str
    recommended: bool
    base: str

    @property
    def served_id(self) -> str:
        return f"{self.name}:{self.variant}"


def servable_variants(
    folder: Path, *, verify_hashes: bool = True, broken: dict[str, str] | None = None
) -> list[Variant]:
    """The variants of an optimized folder that passed their gate, recommended first.

    A variant whose files are missing or changed is left out and, when `broken` is given,
    recorded there (served id -> reason) so the server can say why it is not served.
    """
    if not folder.is_dir():
        raise ModelNotFoundError(f"--model-dir {folder}: no such folder")
    summary = _read(folder / "summary.json") if (folder / "summary.json").is_file() else {}
    recommended = summary.get("recommended")
    variants = []
    for artifact_file in sorted(folder.glob(f"*/{ARTIFACT}")):
        variant = _variant(artifact_file, recommended)
        if variant is None:
            continue
        problem = _changed_file(artifact_file) if verify_hashes else None
        if problem is not None:
            log.error("refusing %s from %s: %s", variant.served_id, artifact_file.parent, problem)
            if broken is not None:
                broken[variant.served_id] = problem
                if variant.recommended:
                    broken[variant.name] = problem
            continue
        variants.append(variant)
    if not variants:
        raise ModelNotFoundError(
            f"--model-dir {folder}: no variant passed its quality gate (or none was found); "
            "see the log for each one, and summary.md for the gate results"
        )
    if not any(v.recommended for v in variants):
        log.warning(
            "%s: summary.json names no recommended variant that can be served; serving the "
            "variants only as NAME:VARIANT",
            folder,
        )
    variants.sort(key=lambda v: (not v.recommended, v.variant))
    return variants


def _variant(artifact_file: Path, recommended: str | None) -> Variant | None:
    artifact = _read(artifact_file)
    folder = artifact_file.parent
    name = str(artifact.get("name") or folder.parent.name)
    variant = str(artifact.get("variant") or folder.name)
    gate = str((artifact.get("gate") or {}).get("status", "unknown"))
    if gate == "failed":
        failures = (artifact.get("gate") or {}).get("failures") or []
        log.error(
            "refusing %s:%s from %s: it failed its quality gate (%s)",
            name,
            variant,
            folder,
            "; ".join(map(str, failures)) or "see verify.md",
        )
        return None
    backend = BACKEND_OF.get(str(artifact.get("backend")))
    if backend is None:
        log.error(
            "skipping %s: unknown backend %r in %s", folder, artifact.get("backend"), ARTIFACT
        )
        return None
    source = artifact.get("source") or {}
    return Variant(
        name=name,
        variant=variant,
        backend=backend,
        precision=str(artifact.get("precision") or variant),
        folder=folder,
        gate=gate,
        recommended=recommended is not None and recommended in (variant, folder.name),
        base=str(source.get("base") or ""),
    )


def _changed_file(artifact_file: Path) -> str | None:
    """Why the files no longer match the hashes recorded when the gate ran (None: they do)."""
    recorded = _read(artifact_file).get("files") or {}
    if isinstance(recorded, list):  # [{"path": ..., "sha256": ...}] is accepted too
        recorded = {item.get("path"): item.get("sha256") for item in recorded}
    for relative, expected in recorded.items():
        path = artifact_file.parent / relative
        if not path.is_file():
            return f"{relative} is missing"
        if _sha256(path) != str(expected).removeprefix("sha256:"):
            return f"{relative} changed since its quality gate ran (sha256 mismatch)"
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} does not hold a JSON object")
    return data
