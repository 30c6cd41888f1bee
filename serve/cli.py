"""Command-line entry points of the serving and monitoring stage."""

from __future__ import annotations

from pathlib import Path

from tuneloop.errors import NotBuiltYetError
from tuneloop.serve.settings import Settings


def serve(*, settings: Settings) -> int:
    """Start the OpenAI-compatible server for a base model, its adapters and optimized variants.

    Serves POST /v1/chat/completions, POST /v1/completions (both with SSE streaming) and
    GET /v1/models, with continuous batching: requests for the base model and any of its LoRA
    adapters share one batch. GET /health, GET /ready, GET /metrics (Prometheus), docs at /docs.
    Every option can also be set as an environment variable TUNELOOP_<NAME> or in a TOML/JSON
    config file; API keys come from TUNELOOP_API_KEYS (comma-separated) or --api-keys-file,
    the admin key from TUNELOOP_ADMIN_KEY. SIGTERM drains: no new requests, running ones
    finish within --shutdown-grace-s, exit 0.

    Args:
        settings: server settings (command line > environment > config file > defaults).
    """
    from tuneloop.serve.loading import model_specs
    from tuneloop.serve.server import run

    model_specs(settings, verify_hashes=False)  # fail fast on bad names and folders
    return run(settings)


def usage_banner(settings: Settings, model: str) -> str:
    """What to open and a ready `curl` for `model`, printed by `tuneloop demo` before serving."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    url = f"http://{host}:{settings.port}"
    auth = ' -H "Authorization: Bearer $TUNELOOP_API_KEY"' if settings.api_key_values() else ""
    body = (
        f'{{"model": "{model}", "messages": [{{"role": "user", "content": '
        '"My parcel has not arrived after two weeks."}], "max_tokens": 64}'
    )
    return "\n".join(
        [
            f"Serving on {url} once {url}/ready answers 200 (a few seconds):",
            f"  OpenAI API   {url}/v1   (model ids: GET {url}/v1/models)",
            f"  API docs     {url}/docs",
            f"  metrics      {url}/metrics",
            "Try:",
            f"  curl {url}/v1/chat/completions{auth} -H 'Content-Type: application/json' \\",
            f"    -d '{body}'",
            "Stop with Ctrl-C (running requests finish first).",
        ]
    )


def monitor_drift(*, reference: Path, data: Path) -> int:
    """Score a file of prompts against an adapter's training reference profile, offline.

    Args:
        reference: reference profile written by `tuneloop train`.
        data: file of prompts (JSONL or CSV).
    """
    raise NotBuiltYetError("`tuneloop monitor drift` is not built yet in this version")
