"""The adapter manifest (`tuneloop_adapter.json`) and the fingerprint of a base model.

The fingerprint lets `optimize` and `serve` refuse an adapter trained on another base: the
architecture, the sizes that shape the adapter's tensors, and a hash of the base config.json.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

from tuneloop import __version__
from tuneloop.base_model import ResolvedBase
from tuneloop.errors import ModelLoadError

MANIFEST = "tuneloop_adapter.json"
MANIFEST_FORMAT = 1
SIZE_KEYS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
)


def base_config(resolved: ResolvedBase) -> dict:
    return json.loads((resolved.path / "config.json").read_text(encoding="utf-8"))


def context_length(resolved: ResolvedBase) -> int:
    """The base model's context window (max_position_embeddings), 2048 when unknown."""
    config = base_config(resolved)
    return int(config.get("max_position_embeddings") or config.get("n_positions") or 2048)


def base_fingerprint(resolved: ResolvedBase) -> dict:
    raw = (resolved.path / "config.json").read_bytes()
    config = json.loads(raw)
    return {
        "spec": resolved.spec,
        "name": resolved.name,
        "source": resolved.source,
        "architecture": (config.get("architectures") or [config.get("model_type")])[0],
        "model_type": config.get("model_type"),
        "sizes": {k: config[k] for k in SIZE_KEYS if k in config},
        "config_sha256": hashlib.sha256(raw).hexdigest(),
    }


def write_manifest(
    out: Path, *, name: str, method: str, resolved: ResolvedBase, task: dict
) -> dict:
    manifest = {
        "format": MANIFEST_FORMAT,
        "name": name,
        "method": method,
        "base": base_fingerprint(resolved),
        "tuneloop_version": __version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "task": task,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def read_manifest(adapter: Path) -> dict | None:
    path = Path(adapter) / MANIFEST
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def check_base_matches(manifest: dict, resolved: ResolvedBase, adapter: Path) -> None:
    """Refuse a base whose architecture or sizes differ from the one the adapter was trained on."""
    expected = manifest["base"]
    actual = base_fingerprint(resolved)
    if expected["architecture"] != actual["architecture"] or expected["sizes"] != actual["sizes"]:
        raise ModelLoadError(
            f"{adapter} was trained on {expected['spec']} ({expected['architecture']}, "
            f"{expected['sizes']}), not on {resolved.spec} ({actual['architecture']}, "
            f"{actual['sizes']}); pass --base {expected['spec']}"
        )
