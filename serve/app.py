"""`build_app`: the FastAPI application, its error mapping and its request middleware.

One pair of exception handlers maps every error to OpenAI's body: `ServerError` subclasses
carry their status, FastAPI's validation errors become 422 (400 for a body that is not JSON),
unknown routes 404, and anything unexpected 500 with the traceback in the log only.
The middleware gives each request an id (echoed in `X-Request-ID` and on every log line),
refuses bodies over `max_body_bytes` with 413 before they are parsed, writes one access log
line per request and counts it in the metrics.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tuneloop import __version__
from tuneloop.serve.admin import admin
from tuneloop.serve.engine import Engine
from tuneloop.serve.errors import (
    InternalError,
    InvalidRequest,
    PayloadTooLarge,
    RouteNotFound,
    ServerError,
    ValidationFailed,
)
from tuneloop.serve.logs import request_id_var
from tuneloop.serve.metrics import OUTCOME_STATUS, UNKNOWN
from tuneloop.serve.routes import api, ops
from tuneloop.serve.state import ServerState

log = logging.getLogger("tuneloop.serve.access")
error_log = logging.getLogger(__name__)

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
QUIET_PATHS = {"/health", "/ready", "/metrics"}
DESCRIPTION = """OpenAI-compatible API for a base model, its LoRA adapters and optimized
variants, with continuous batching. Send `Authorization: Bearer KEY` when the server has API
keys. Errors use OpenAI's body: `{"error": {"message", "type", "param", "code"}}`."""


def build_app(
    state: ServerState,
    *,
    load: Callable[[], Engine] | None = None,
    on_load_failed: Callable[[], None] | None = None,
) -> FastAPI:
    """The application. `load` builds the engine in a background thread after start-up, so
    /health answers while models load; without it, `state.engine` must already be set."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if load is not None:
            threading.Thread(
                target=_load_engine, args=(state, load, on_load_failed), daemon=True
            ).start()
        yield
        if state.engine is not None:
            state.engine.stop()

    app = FastAPI(
        title="tuneloop",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
    )
    app.state.tuneloop = state
    app.include_router(api)
    app.include_router(admin)
    app.include_router(ops)
    app.add_exception_handler(ServerError, _server_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    app.add_middleware(LimitBody, max_bytes=state.settings.max_body_bytes)
    app.add_middleware(RequestContext, state=state)
    return app


def _load_engine(state: ServerState, load, on_load_failed) -> None:
    try:
        state.engine = load()
        state.ready = True
        error_log.info("ready: serving %s", ", ".join(sorted(state.engine.models.ids())))
    except Exception as exc:
        state.load_error = f"{type(exc).__name__}: {exc}"
        error_log.exception("loading the models failed; the server will exit")
        if on_load_failed is not None:
            on_load_failed()


# ---- exception handlers ----


async def _server_error(request: Request, exc: ServerError) -> JSONResponse:
    request.state.error_kind = exc.kind
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers())


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = _most_specific(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return await _server_error(request, InvalidRequest("the request body is not valid JSON"))
    messages = [f"{_param(e) or 'body'}: {e.get('msg', 'invalid')}" for e in errors]
    params = [_param(e) for e in errors]
    error = ValidationFailed("; ".join(messages), param=params[0] if params else None)
    return await _server_error(request, error)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 404:
        error = RouteNotFound(f"no route {request.method} {request.url.path}")
    else:
        error = InvalidRequest(str(exc.detail))
        error.status = exc.status_code
    return await _server_error(request, error)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    error_log.exception("unexpected error while handling %s", request.url.path)
    return await _server_error(request, InternalError("internal error; see the server log"))


def _param(error: dict) -> str | None:
    loc = [str(part) for part in error.get("loc", ()) if part != "body"]
    # pydantic names the branch of a union it tried ("str", "list[constrained-str]"): drop it
    loc = [part for part in loc if not re.search(r"[\[\]-]|^(str|int|float|list|dict)$", part)]
    return ".".join(loc) or None


def _most_specific(errors) -> list[dict]:
    """For a field that failed every branch of a union, keep the errors that are not mere
    type mismatches (e.g. 'at most 4 items' rather than 'should be a valid string')."""
    by_param: dict[str | None, list[dict]] = {}
    for error in errors:
        by_param.setdefault(_param(error), []).append(error)
    kept = []
    for group in by_param.values():
        specific = [e for e in group if not str(e.get("type", "")).endswith("_type")]
        kept.extend(specific or group[:1])
    return kept


# ---- middleware ----


class LimitBody:
    """413 for bodies over `max_bytes`, by Content-Length or by counting what arrives."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await self._refuse(scope, send, int(declared))
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left before sending its body
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                return await self._refuse(scope, send, size)
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body, delivered = b"".join(chunks), False

        async def replay():
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope, send, size: int) -> None:
        scope.setdefault("state", {})["error_kind"] = PayloadTooLarge.kind
        error = PayloadTooLarge(
            f"the request body is {'over ' if size else ''}{size} bytes; this server accepts at "
            f"most {self.max_bytes} (max_body_bytes)"
        )
        response = JSONResponse(error.body(), status_code=error.status)
        await response(scope, _drain_receive, send)


async def _drain_receive():
    return {"type": "http.disconnect"}


class RequestContext:
    """Request id, one access log line and the request counters, for every HTTP request."""

    def __init__(self, app, state: ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        started, status = time.monotonic(), [500]

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._account(scope, status[0], time.monotonic() - started)
            request_id_var.reset(token)

    def _account(self, scope, status: int, seconds: float) -> None:
        notes = scope.get("state", {})
        stream = notes.get("stream")
        outcome = stream.outcome if stream is not None else notes.get("outcome")
        kind = notes.get("error_kind")
        if outcome in OUTCOME_STATUS and status == 200:
            status, kind = OUTCOME_STATUS[outcome]
        path = scope["path"]
        labels = notes.get("labels", (UNKNOWN, UNKNOWN))
        if path.startswith("/v1/") and scope["method"] == "POST":
            self.state.metrics.observe_response(labels, status, seconds, kind)
        fields = {
            "method": scope["method"],
            "path": path,
            "status": int(status),
            "duration_ms": round(seconds * 1000, 1),
        }
        if labels[0] != UNKNOWN:
            fields.update(model=labels[0], adapter=labels[1])
        if stream is not None:
            fields.update(
                prompt_tokens=stream.prompt_tokens, completion_tokens=stream.completion_tokens
            )
        elif "completion_tokens" in notes:
            fields["completion_tokens"] = notes["completion_tokens"]
        if outcome is not None:
            fields["outcome"] = getattr(outcome, "value", str(outcome))
        if self.state.settings.log_prompts and "prompt" in notes:
            records = stream.records if stream is not None else notes.get("records", [])
            fields["prompt"] = notes["prompt"]
            fields["completion"] = [text for record in records for text in record.texts]
        level = logging.DEBUG if path in QUIET_PATHS else logging.INFO
        log.log(level, "%s %s %s", scope["method"], path, status, extra=fields)
