"""The HTTP handlers: OpenAI's completions, chat completions and models, plus health and metrics.

Each handler validates (schema, then limits), submits to the engine and shapes the answer;
the work sits in `serve.completions` and `serve.engine`. Errors are raised as
`serve.errors` exceptions and turned into OpenAI's error body by the handlers in `serve.app`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tuneloop.serve import completions
from tuneloop.serve.auth import require_api_key, require_metrics_key
from tuneloop.serve.engine import Engine
from tuneloop.serve.errors import InvalidRequest, Unavailable
from tuneloop.serve.lanes import Lane
from tuneloop.serve.protocol import (
    ChatChoice,
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionChoice,
    CompletionRequest,
    ErrorResponse,
    ModelCard,
    ModelList,
    PromptTokensDetails,
    ResponseMessage,
    Usage,
    new_id,
    now,
)
from tuneloop.serve.requests import RequestRecord
from tuneloop.serve.state import ServerState, StateDep
from tuneloop.serve.streaming import ChunkWriter, StreamState, stream_events

ERRORS = {
    status: {"model": ErrorResponse} for status in (400, 401, 404, 413, 422, 429, 500, 503, 504)
}
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

api = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)], responses=ERRORS)
ops = APIRouter()


def ready_engine(state: StateDep) -> Engine:
    if state.draining:
        raise Unavailable("the server is shutting down and accepts no new requests")
    if not state.ready:
        raise Unavailable("the model is still loading; GET /ready says when it is done")
    return state.engine


EngineDep = Annotated[Engine, Depends(ready_engine)]


@api.post("/chat/completions", response_model=ChatCompletion)
async def chat_completions(
    body: ChatCompletionRequest,
    request: Request,
    engine: EngineDep,
    state: StateDep,
):
    """Answer a conversation (OpenAI's chat completions; `stream: true` for SSE)."""
    lane, adapter = _resolve(engine, body.model, request, state)
    completions.check_supported(body)
    if state.settings.log_prompts:
        request.state.prompt = [m.model_dump(exclude_none=True) for m in body.messages]
    prompt_ids = completions.chat_prompt(lane, body)
    requests = completions.prepare(
        body, [prompt_ids], lane, adapter, state.settings, _request_id(request)
    )
    submissions = _submit_all(engine, requests, lane)
    response_id, created = new_id("chatcmpl"), now()
    if body.stream:
        return _streaming_response(
            body, submissions, "chat.completion.chunk", response_id, created, request, state
        )
    records = await completions.collect(submissions, request.is_disconnected)
    _finish(request, records, state)
    record = records[0]
    choices = [
        ChatChoice(
            index=i,
            message=ResponseMessage(content=text),
            finish_reason=_reason(record, i),
        )
        for i, text in enumerate(record.texts)
    ]
    return ChatCompletion(
        id=response_id,
        created=created,
        model=body.model,
        choices=choices,
        usage=_usage(records),
    )


@api.post("/completions", response_model=Completion)
async def text_completions(
    body: CompletionRequest,
    request: Request,
    engine: EngineDep,
    state: StateDep,
):
    """Continue a prompt (OpenAI's legacy completions; `stream: true` for SSE)."""
    lane, adapter = _resolve(engine, body.model, request, state)
    completions.check_supported(body)
    if state.settings.log_prompts:
        request.state.prompt = body.prompt
    prompts = [_prompt_ids(lane, p) for p in body.prompts()]
    if not prompts:
        raise InvalidRequest("prompt is an empty list", param="prompt")
    requests = completions.prepare(
        body, prompts, lane, adapter, state.settings, _request_id(request)
    )
    echoes = [_echo_text(lane, p) if body.echo else "" for p in body.prompts()]
    submissions = _submit_all(engine, requests, lane)
    response_id, created = new_id("cmpl"), now()
    if body.stream:
        return _streaming_response(
            body, submissions, "text_completion", response_id, created, request, state, echoes
        )
    records = await completions.collect(submissions, request.is_disconnected)
    _finish(request, records, state)
    choices = [
        CompletionChoice(
            index=p * body.n + i,
            text=echoes[p] + text,
            finish_reason=_reason(record, i),
        )
        for p, record in enumerate(records)
        for i, text in enumerate(record.texts)
    ]
    return Completion(
        id=response_id, created=created, model=body.model, choices=choices, usage=_usage(records)
    )


@api.get("/models", response_model=ModelList)
async def list_models(state: StateDep):
    """The served models: base models, their adapters, optimized variants."""
    if not state.ready:
        return ModelList(data=[])
    return ModelList(data=[_card(m, lane, a, state) for m, (lane, a) in _served(state).items()])


@api.get("/models/{model:path}", response_model=ModelCard)
async def retrieve_model(model: str, engine: EngineDep, state: StateDep):
    """One served model (404 with the served ids if it is not one of them)."""
    lane, adapter = engine.models.resolve(model)
    return _card(model, lane, adapter, state)


def _served(state: ServerState):
    return state.engine.models.ids()


def _card(model: str, lane: Lane, adapter: str | None, state: ServerState) -> ModelCard:
    info = lane.backend.info
    return ModelCard(
        id=model,
        created=state.started,
        root=lane.name,
        parent=lane.name if adapter else None,
        backend=info.backend,
        precision=info.precision,
    )


@ops.get("/health", include_in_schema=True)
async def health():
    """The process is alive (says nothing about the model)."""
    return {"status": "ok"}


@ops.get("/ready")
async def ready(state: StateDep):
    """200 once the models are loaded and a warm-up generation ran (status `degraded`, with
    `not_loaded`, when some configured models failed to load); 503 before and when draining."""
    if state.ready and not state.draining:
        body = {"status": "ready", "models": sorted(state.engine.models.ids())}
        not_loaded = state.engine.models.not_loaded
        if not_loaded:  # still ready: the other models serve; the status says what is missing
            body.update(status="degraded", not_loaded=dict(sorted(not_loaded.items())))
        return body
    status = "draining" if state.draining else ("failed" if state.load_error else "loading")
    body = {"status": status}
    if state.load_error:
        body["error"] = state.load_error
    return JSONResponse(body, status_code=503)


@ops.get("/metrics", dependencies=[Depends(require_metrics_key)])
async def metrics(state: StateDep):
    """Prometheus metrics (text exposition format)."""
    return Response(state.metrics.exposition(), media_type="text/plain; version=0.0.4")


# ---- helpers ----


def _resolve(engine: Engine, model: str, request: Request, state: ServerState):
    lane, adapter = engine.models.resolve(model)
    request.state.labels = state.metrics.labels(lane.name, adapter)
    return lane, adapter


def _submit_all(engine: Engine, requests, lane: Lane) -> list:
    """Submit every prompt of a request, or none: if one is refused (queue full), the ones
    already queued are cancelled rather than left to run for nobody."""
    submissions = []
    try:
        for generation_request in requests:
            submissions.append(engine.submit(generation_request, lane))
    except Exception:
        for submission in submissions:
            submission.cancel()
        raise
    return submissions


def _request_id(request: Request) -> str:
    return request.state.request_id


def _prompt_ids(lane: Lane, prompt: str | list[int]) -> list[int]:
    if isinstance(prompt, list):
        return prompt
    return lane.tokenizer.encode(prompt, add_special_tokens=False)


def _echo_text(lane: Lane, prompt: str | list[int]) -> str:
    return prompt if isinstance(prompt, str) else lane.tokenizer.decode(prompt)


def _reason(record: RequestRecord, index: int) -> str:
    return record.finish_reasons[index].value


def _usage(records: list[RequestRecord]) -> Usage:
    prompt = sum(r.prompt_tokens for r in records)
    completion = sum(sum(r.completion_tokens) for r in records)
    cached = sum(r.cached_prompt_tokens for r in records)
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=cached),
    )


def _finish(request: Request, records: list[RequestRecord], state: ServerState) -> None:
    """Raise for requests that ended badly; note the outcome for the access log and metrics."""
    request.state.outcome = max((r.outcome for r in records), key=_severity)
    request.state.records = records
    request.state.completion_tokens = sum(sum(r.completion_tokens) for r in records)
    completions.raise_for_outcome(records, state.settings)


def _severity(reason) -> int:
    return ["stop", "length", "cancelled", "timeout", "shutdown", "error"].index(reason.value)


def _streaming_response(
    body, submissions, writer_kind, response_id, created, request, state, echoes=()
) -> StreamingResponse:
    writer = ChunkWriter(
        kind=writer_kind,
        response_id=response_id,
        created=created,
        model=body.model,
        n=body.n,
        include_usage=bool(body.stream_options and body.stream_options.include_usage),
        echoes=list(echoes),
    )
    stream_state = StreamState()
    request.state.stream = stream_state
    return StreamingResponse(
        stream_events(submissions, writer, state.settings, stream_state),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )
