"""API keys as Bearer tokens, compared in constant time; a separate key for the admin routes.

`require_api_key` guards every /v1 route; it also applies the per-client rate limit
(`rate_limit_rpm`), after authentication, so a client without a valid key can't use up
another client's budget.
"""

from __future__ import annotations

import hmac

from fastapi import Request

from tuneloop.serve.errors import AuthenticationFailed, PermissionDenied
from tuneloop.serve.state import StateDep


def require_api_key(request: Request, state: StateDep) -> None:
    """Open when no keys are configured (allowed only on loopback or in development)."""
    if state.api_keys:
        key = _check_bearer(request, state.api_keys, "an API key")
        client = "key:" + key
    else:
        client = "address:" + (request.client.host if request.client else "unknown")
    if state.rate_limiter is not None:
        state.rate_limiter.check(client)


def require_metrics_key(request: Request, state: StateDep) -> None:
    if state.settings.metrics_require_key and state.api_keys:
        _check_bearer(request, state.api_keys, "an API key")  # scrapes are not rate limited


def require_admin_key(request: Request, state: StateDep) -> None:
    admin_key = state.settings.admin_key
    if admin_key is None:
        raise PermissionDenied("the admin routes are off: set TUNELOOP_ADMIN_KEY to use them")
    _check_bearer(request, [admin_key.get_secret_value().encode()], "the admin key")


def _check_bearer(request: Request, keys: list[bytes], what: str) -> str:
    """The valid key the request carries, or AuthenticationFailed."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed(
            f"You didn't provide {what}. Send it as an HTTP header: 'Authorization: Bearer KEY'."
        )
    if not _matches(token.strip().encode(), keys):
        raise AuthenticationFailed(f"Incorrect API key provided: {_redact(token.strip())}.")
    return token.strip()


def _matches(token: bytes, keys: list[bytes]) -> bool:
    """Compare with every key (no early exit), each comparison in constant time."""
    found = False
    for key in keys:
        found |= hmac.compare_digest(token, key)
    return found


def _redact(token: str) -> str:
    return token[:3] + "*" * 4 + token[-2:] if len(token) > 8 else "*" * len(token)
