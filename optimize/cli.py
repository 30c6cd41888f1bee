"""Command-line entry points of the optimize stage."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from tuneloop.base_model import DEFAULT_BASE
from tuneloop.errors import NotBuiltYetError


def merge(*, adapter: Path, out: Path, base: str = DEFAULT_BASE) -> int:
    """Merge a LoRA/DoRA adapter into its base model and save safetensors plus a manifest.

    Args:
        adapter: folder written by `tuneloop train`.
        out: folder for the merged model.
        base: base model the adapter was trained on.
    """
    raise NotBuiltYetError("`tuneloop optimize merge` is not built yet in this version")


def export(*, model: Path, out: Path, format: Literal["onnx"] = "onnx") -> int:
    """Export a merged model to ONNX with a KV cache.

    Args:
        model: merged model folder.
        out: folder for the exported model.
        format: export format.
    """
    raise NotBuiltYetError("`tuneloop optimize export` is not built yet in this version")


def quantize(*, model: Path, method: str, out: Path) -> int:
    """Quantize an exported or merged model (int8, int4, bnb-int8, bnb-nf4).

    Args:
        model: ONNX or merged model folder.
        method: quantization method.
        out: folder for the quantized model.
    """
    raise NotBuiltYetError("`tuneloop optimize quantize` is not built yet in this version")


def verify(*, reference: Path, candidate: Path, data: Path) -> int:
    """The quality gate: compare a candidate with its fp32 reference; exit 1 when it fails.

    Args:
        reference: the fp32 reference model folder.
        candidate: the optimized model folder to check.
        data: validation file.
    """
    raise NotBuiltYetError("`tuneloop optimize verify` is not built yet in this version")


def all_variants(*, adapter: Path, out: Path, base: str = DEFAULT_BASE) -> int:
    """Merge, export, quantize (int8, int4) and verify each variant, with a summary table.

    Args:
        adapter: folder written by `tuneloop train`.
        out: folder with one subfolder per variant.
        base: base model the adapter was trained on.
    """
    raise NotBuiltYetError("`tuneloop optimize all` is not built yet in this version")
