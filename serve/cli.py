"""Command-line entry points of the serving and monitoring stage."""

from __future__ import annotations

from pathlib import Path

from tuneloop.base_model import DEFAULT_BASE
from tuneloop.errors import NotBuiltYetError


def serve(
    *,
    base: str = DEFAULT_BASE,
    adapter: list[str] | None = None,
    model_dir: Path | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
) -> int:
    """Start the OpenAI-compatible server for a base model and its adapters.

    Args:
        base: base model: an alias, a local folder or a Hugging Face model id.
        adapter: NAME=DIR of an adapter folder written by `tuneloop train`; repeatable.
        model_dir: folder written by `tuneloop optimize all`; serves the variants that passed
            the gate.
        host: interface to bind.
        port: TCP port to listen on.
    """
    raise NotBuiltYetError("`tuneloop serve` is not built yet in this version")


def monitor_drift(*, reference: Path, data: Path) -> int:
    """Score a file of prompts against an adapter's training reference profile, offline.

    Args:
        reference: reference profile written by `tuneloop train`.
        data: file of prompts (JSONL or CSV).
    """
    raise NotBuiltYetError("`tuneloop monitor drift` is not built yet in this version")
