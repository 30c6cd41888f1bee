"""Command-line entry points of the serving and monitoring stage."""

from __future__ import annotations

from pathlib import Path

from tuneloop.serve.settings import DRIFT_THRESHOLD, Settings


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


def monitor_drift(
    *,
    data: Path,
    reference: Path | None = None,
    adapter: Path | None = None,
    base: str | None = None,
    threshold: float = DRIFT_THRESHOLD,
    json: bool = False,
) -> int:
    """Score a file of prompts against an adapter's training reference profile, offline.

    Computes the drift scores the server exports (PSI and Jensen-Shannon per feature, cosine
    distance of the prompt-embedding centroid) for a file in any format `tuneloop data check`
    reads; records may end without an answer. Without --adapter or --base only a tokenizer is
    loaded (seconds): prompt length, rare-token share and, where the file has answers, answer
    length. With --adapter (or --base) the model is loaded too, and the answers'
    log-probability and the prompt embeddings are scored (one forward pass per record:
    slower). Exits 1 when any PSI is above --threshold, so it can gate a new data source in CI.

    Args:
        data: file of prompts, with or without answers (JSONL or CSV: chat, prompt/completion
            or alpaca records).
        reference: reference profile written by `tuneloop train` (default:
            ADAPTER/reference_profile.json).
        adapter: adapter folder written by `tuneloop train`; loads the model for the
            log-probability and embedding features.
        base: base model (default: the one the profile records); loads the model too.
        threshold: PSI above which the command exits 1 (0.25: a significant shift).
        json: print the report as JSON instead of a table.
    """
    from tuneloop.serve.drift_offline import check_drift, report_text

    report = check_drift(data, reference, adapter=adapter, base=base, threshold=threshold)
    print(report_text(report, json))
    return 1 if report.drifted else 0
