"""What the HTTP layer shares: settings, metrics, the engine once loaded, and the life cycle."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from tuneloop.serve.engine import Engine
from tuneloop.serve.metrics import Metrics
from tuneloop.serve.rate_limit import RateLimiter
from tuneloop.serve.settings import Settings


@dataclass
class ServerState:
    settings: Settings
    metrics: Metrics
    api_keys: list[bytes] = field(default_factory=list)
    engine: Engine | None = None
    ready: bool = False
    """Models loaded and a warm-up generation done."""
    draining: bool = False
    """SIGTERM received: no new requests, running ones finish."""
    load_error: str | None = None
    started: int = field(default_factory=lambda: int(time.time()))
    rate_limiter: RateLimiter | None = None

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics | None = None) -> ServerState:
        keys = [key.encode() for key in settings.api_key_values()]
        limiter = RateLimiter(settings.rate_limit_rpm) if settings.rate_limit_rpm else None
        return cls(
            settings=settings, metrics=metrics or Metrics(), api_keys=keys, rate_limiter=limiter
        )


def server_state(request: Request) -> ServerState:
    return request.app.state.tuneloop


StateDep = Annotated[ServerState, Depends(server_state)]
