"""The server's errors: each one knows its HTTP status and its OpenAI error body.

Routes raise these; one pair of handlers in `serve.app` turns them (and FastAPI's validation
errors) into `{"error": {"message", "type", "param", "code"}}`, the body official OpenAI
clients parse into their own exception classes. `kind` is the label of the
`tuneloop_request_errors_total` counter.
"""

from __future__ import annotations

import math

from tuneloop.errors import ModelLoadError, TuneloopError


class ServerError(TuneloopError):
    status = 500
    type = "server_error"
    code: str | None = None
    kind = "internal"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def body(self) -> dict:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def headers(self) -> dict[str, str]:
        return {}


class InvalidRequest(ServerError):
    """The request asks for something this server can't do (a limit, an unknown feature)."""

    status = 400
    type = "invalid_request_error"
    kind = "validation"


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"


class UnsupportedParameter(InvalidRequest):
    code = "unsupported_parameter"


class ValidationFailed(InvalidRequest):
    """The body does not match the schema (wrong type, out of range, missing field)."""

    status = 422


class AuthenticationFailed(ServerError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"
    kind = "auth"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class PermissionDenied(ServerError):
    status = 403
    type = "invalid_request_error"
    code = "permission_denied"
    kind = "auth"


class ModelNotServed(ServerError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"
    kind = "validation"


class RouteNotFound(ServerError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"
    kind = "validation"


class Conflict(ServerError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"
    kind = "validation"


class PayloadTooLarge(ServerError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"
    kind = "validation"


class Overloaded(ServerError):
    """The waiting queue is full; `Retry-After` says when a slot is likely free."""

    status = 429
    type = "rate_limit_error"
    code = "queue_full"
    kind = "overloaded"

    def __init__(self, message: str, *, retry_after_s: float):
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, round(self.retry_after_s)))}


class RateLimited(Overloaded):
    """This client sent more than `rate_limit_rpm` requests in the last minute."""

    code = "rate_limit_exceeded"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, math.ceil(self.retry_after_s)))}


class Unavailable(ServerError):
    """Not ready yet, or shutting down."""

    status = 503
    type = "service_unavailable"
    code = "unavailable"
    kind = "overloaded"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}


class DeadlineExceeded(ServerError):
    status = 504
    type = "timeout"
    code = "timeout"
    kind = "timeout"


class ClientDisconnected(ServerError):
    """The client went away before its answer was ready (nginx's 499; nobody reads it)."""

    status = 499
    type = "client_closed_request"
    code = "cancelled"
    kind = "cancelled"


class ModelNotLoaded(ServerError):
    """A model or adapter the server was asked to serve failed to load (see /ready)."""

    status = 503
    type = "service_unavailable"
    code = "model_not_loaded"
    kind = "internal"


class InternalError(ServerError):
    """The model worker failed on this request; details are in the server log."""


class AdapterRefused(ModelLoadError):
    """An adapter folder can't be served on this base (wrong base, unsafe files, bad name)."""
