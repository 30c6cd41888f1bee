"""API keys as Bearer tokens, compared in constant time; a separate key for the admin routes."""

from __future__ import annotations

import hmac

from fastapi import Request

from tuneloop.serve.errors import AuthenticationFailed, PermissionDenied
from tuneloop.serve.state import StateDep


def require_api_key(request: Request, state: StateDep) -> None:
    """Open when no keys are configured (allowed only on loopback or in development)."""
    if state.api_keys:
        _check_bearer(request, state.api_keys, "an API key")


def require_metrics_key(request: Request, state: StateDep) -> None:
    if state.settings.metrics_require_key:
        require_api_key(request, state)


def require_admin_key(request: Request, state: StateDep) -> None:
    admin_key = state.settings.admin_key
    if admin_key is None:
        raise PermissionDenied("the admin routes are off: set TUNELOOP_ADMIN_KEY to use them")
    _check_bearer(request, [admin_key.get_secret_value().encode()], "the admin key")


def _check_bearer(request: Request, keys: list[bytes], what: str) -> None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed(
            f"You didn't provide {what}. Send it as an HTTP header: 'Authorization: Bearer KEY'."
        )
    if not _matches(token.strip().encode(), keys):
        raise AuthenticationFailed(f"Incorrect API key provided: {_redact(token.strip())}.")


def _matches(token: bytes, keys: list[bytes]) -> bool:
    """Compare with every key (no early exit), each comparison in constant time."""
    found = False
    for key in keys:
        found |= hmac.compare_digest(token, key)
    return found


def _redact(token: str) -> str:
    return token[:3] + "*" * 4 + token[-2:] if len(token) > 8 else "*" * len(token)
