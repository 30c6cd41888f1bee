"""Merge a LoRA/DoRA adapter into its base model (PEFT `merge_and_unload`) and save it.

The merged folder is a plain transformers model (safetensors, tokenizer, generation config)
plus `tuneloop_artifact.json` naming the base, the adapter and their hashes, so every later
artifact can be traced back to exactly what it was made from.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from tuneloop.base_model import ResolvedBase, load_model, load_tokenizer
from tuneloop.errors import ModelLoadError
from tuneloop.optimize.adapter_source import (
    AdapterSource,
    check_compatible,
    read_adapter,
    resolve_adapter_base,
)
from tuneloop.optimize.artifacts import sha256_file, staged_dir, write_artifact

log = logging.getLogger(__name__)

REFERENCE_PROFILE = "reference_profile.json"


def merge_adapter(adapter: Path, out: Path, base: str | None = None, force: bool = False) -> Path:
    """Merge `adapter` into its base and write the merged model to `out`."""
    source = read_adapter(adapter)
    resolved = resolve_adapter_base(source, base)
    check_compatible(source, resolved)
    with staged_dir(out, force) as staging:
        merged = load_merged(source, resolved)
        merged.save_pretrained(staging, safe_serialization=True)
        load_tokenizer(resolved).save_pretrained(staging)
        if (source.path / REFERENCE_PROFILE).is_file():
            shutil.copy2(source.path / REFERENCE_PROFILE, staging / REFERENCE_PROFILE)
        write_artifact(
            staging,
            name=source.name,
            variant="merged",
            backend="torch",
            precision="fp32",
            source=source_record(source, resolved),
            gate_status="reference",
            extra={"task": source.task},
        )
    log.info("merged %s into %s: %s", source.path, resolved.spec, out)
    return Path(out)


def load_peft_model(source: AdapterSource, base: ResolvedBase):
    """Base model with the adapter attached (not merged), in eval mode."""
    from peft import PeftModel

    model = load_model(base)
    try:
        return PeftModel.from_pretrained(model, source.path).eval()
    except (RuntimeError, ValueError, KeyError) as exc:  # PEFT's shape and key errors
        raise ModelLoadError(
            f"cannot attach adapter {source.path} to base {base.spec}: {exc}"
        ) from exc


def load_merged(source: AdapterSource, base: ResolvedBase):
    """The base model with the adapter folded into its weights."""
    return load_peft_model(source, base).merge_and_unload()


def source_record(source: AdapterSource, base: ResolvedBase) -> dict:
    return {
        "base": base.spec,
        "base_config_sha256": sha256_file(base.path / "config.json"),
        "adapter": str(source.path),
        "adapter_method": source.method,
        "adapter_sha256": sha256_file(source.weights),
    }
