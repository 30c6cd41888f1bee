"""Check an adapter folder before any of its weights are read.

Accepted: the folder `tuneloop train --out DIR` writes (a PEFT LoRA adapter plus
`tuneloop_adapter.json`) and plain PEFT LoRA folders. Refused, each with a message naming the
folder and the reason: pickle weights, non-LoRA or DoRA adapters (they can't share a batch
with other adapters), names that can't be model ids, paths outside the allowed root, and
adapters trained on a different base model (architecture or sizes differ).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from tuneloop.serve.errors import AdapterRefused

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
WEIGHTS = "adapter_model.safetensors"
# Base-model facts a manifest may record; any that differ from the served base refuse the adapter.
COMPARED_CONFIG_KEYS = (
    "model_type",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "intermediate_size",
    "vocab_size",
)


@dataclass(frozen=True)
class AdapterFolder:
    name: str
    path: Path
    manifest: dict
    """`tuneloop_adapter.json`, or {} for a plain PEFT folder."""


def parse_adapter_option(value: str) -> tuple[str, Path]:
    """Split `NAME=DIR` (the `--adapter` option)."""
    name, sep, folder = value.partition("=")
    if not sep or not folder:
        raise AdapterRefused(f"--adapter {value!r}: expected NAME=DIR, e.g. support-triage=out/")
    return check_name(name.strip()), Path(folder).expanduser()


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise AdapterRefused(
            f"adapter name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def inside(root: Path, relative: str) -> Path:
    """`root/relative`, refusing absolute paths and anything that resolves outside `root`:
    `..`, a symlinked folder, or a symlinked file inside the folder that points out."""
    if Path(relative).is_absolute() or not relative.strip():
        raise AdapterRefused(f"adapter path {relative!r} must be relative to the adapter directory")
    root = root.resolve()
    folder = (root / relative).resolve()
    if not _within(folder, root):
        raise AdapterRefused(f"adapter path {relative!r} leaves the adapter directory")
    if folder.is_dir():
        for path in folder.rglob("*"):
            if not _within(path.resolve(), root):
                raise AdapterRefused(
                    f"adapter path {relative!r}: {path.relative_to(folder)} links outside the "
                    "adapter directory"
                )
    return folder


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def inspect_adapter(name: str, folder: Path, base_config: dict) -> AdapterFolder:
    """Validate `folder` as a LoRA adapter for the base described by `base_config`."""
    check_name(name)
    if not folder.is_dir():
        raise AdapterRefused(f"adapter {name!r}: {folder} is not a folder")
    config_file = folder / "adapter_config.json"
    if not config_file.is_file():
        raise AdapterRefused(
            f"adapter {name!r}: {folder} has no adapter_config.json (not a PEFT adapter folder)"
        )
    _check_weights(name, folder)
    peft_config = _read_json(config_file, name)
    _check_lora(name, folder, peft_config)
    manifest_file = folder / "tuneloop_adapter.json"
    manifest = _read_json(manifest_file, name) if manifest_file.is_file() else {}
    _check_base(name, manifest, base_config)
    return AdapterFolder(name, folder, manifest)


def _check_weights(name: str, folder: Path) -> None:
    if (folder / WEIGHTS).is_file():
        return
    pickles = sorted(p.name for p in folder.glob("*.bin")) + sorted(
        p.name for p in folder.glob("*.pt")
    )
    found = f" (found {', '.join(pickles)}: pickle files are never loaded)" if pickles else ""
    raise AdapterRefused(f"adapter {name!r}: {folder} has no {WEIGHTS}{found}")


def _check_lora(name: str, folder: Path, peft_config: dict) -> None:
    peft_type = str(peft_config.get("peft_type", "")).upper()
    if peft_type != "LORA":
        raise AdapterRefused(
            f"adapter {name!r}: {folder} is a {peft_type or 'unknown'} adapter; only LoRA "
            "adapters share a batch. Merge it (`tuneloop optimize merge`) and serve the result."
        )
    if peft_config.get("use_dora"):
        raise AdapterRefused(
            f"adapter {name!r}: DoRA adapters can't be mixed with others in one batch. Merge it "
            "(`tuneloop optimize merge`) and serve the merged model with --base."
        )


def _check_base(name: str, manifest: dict, base_config: dict) -> None:
    base = manifest.get("base")
    if not isinstance(base, dict):
        return
    recorded = {**base, **(base.get("config") or {})}
    if "architecture" in recorded and "architectures" in base_config:
        recorded.setdefault("architectures", [recorded["architecture"]])
    for key in (*COMPARED_CONFIG_KEYS, "architectures"):
        if key in recorded and key in base_config and recorded[key] != base_config[key]:
            raise AdapterRefused(
                f"adapter {name!r} was trained on base {base.get('spec', '?')!r} with "
                f"{key}={recorded[key]!r}; the served base has {key}={base_config[key]!r}"
            )


def _read_json(path: Path, name: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdapterRefused(f"adapter {name!r}: cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise AdapterRefused(f"adapter {name!r}: {path} does not hold a JSON object")
    return data
