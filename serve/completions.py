"""From a validated OpenAI request to engine submissions, and from engine events to responses.

The handlers in `serve.routes` stay small: they call `prepare` (prompt ids, limits, sampling
settings), submit to the engine, then either `collect` the whole answer or `stream` it as
server-sent events. Everything model-independent about OpenAI's wire format lives here.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from tuneloop.serve.engine import Submission
from tuneloop.serve.errors import (
    ClientDisconnected,
    ContextLengthExceeded,
    DeadlineExceeded,
    InternalError,
    InvalidRequest,
    ServerError,
    Unavailable,
    UnsupportedParameter,
)
from tuneloop.serve.lanes import Lane
from tuneloop.serve.protocol import ChatCompletionRequest, Request
from tuneloop.serve.requests import (
    ChoiceFinished,
    FinishReason,
    GenerationRequest,
    RequestFinished,
    RequestRecord,
    SamplingParams,
    TextDelta,
)
from tuneloop.serve.settings import Settings

log = logging.getLogger(__name__)

DISCONNECT_POLL_S = 0.25
ABORTS = {
    FinishReason.CANCELLED: lambda s: ClientDisconnected("the client closed the connection"),
    FinishReason.TIMEOUT: lambda s: DeadlineExceeded(
        f"the request did not finish within its deadline of {s.request_timeout_s:g} s "
        "(request_timeout_s)"
    ),
    FinishReason.ERROR: lambda s: InternalError(
        "the model failed while generating this answer; the error is in the server log"
    ),
    FinishReason.SHUTDOWN: lambda s: Unavailable(
        "the server shut down before this answer was finished"
    ),
}


def check_supported(body: Request) -> None:
    refused = body.unsupported()
    if refused:
        raise UnsupportedParameter(
            f"this server does not support {', '.join(refused)}; leave "
            f"{'it' if len(refused) == 1 else 'them'} unset",
            param=refused[0],
        )


def chat_prompt(lane: Lane, body: ChatCompletionRequest) -> list[int]:
    tokenizer = lane.tokenizer
    if not getattr(tokenizer, "chat_template", None):
        raise InvalidRequest(
            f"model '{body.model}' has no chat template; use /v1/completions", param="model"
        )
    messages = [
        {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
        for m in body.messages
    ]
    try:
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    except Exception as exc:  # jinja raises TemplateError or plain exceptions for bad turns
        raise InvalidRequest(
            f"the chat template of '{body.model}' rejected the messages: {exc}", param="messages"
        ) from exc
    return list(ids["input_ids"] if isinstance(ids, dict) else ids)


def prepare(
    body: Request,
    prompts: list[list[int]],
    lane: Lane,
    adapter: str | None,
    settings: Settings,
    request_id: str,
) -> list[GenerationRequest]:
    """Check each prompt against the limits and build the engine's requests."""
    if body.n > settings.max_batch_size:
        raise InvalidRequest(
            f"n is {body.n}, but this server decodes at most {settings.max_batch_size} "
            "sequences together (max_batch_size)",
            param="n",
        )
    requested = body.requested_max_tokens()
    if requested is not None and requested > settings.max_tokens_limit:
        raise InvalidRequest(
            f"max_tokens is {requested}, but this server allows at most "
            f"{settings.max_tokens_limit} (max_tokens_limit)",
            param="max_tokens",
        )
    vocab = len(lane.tokenizer)
    requests = []
    for i, prompt_ids in enumerate(prompts):
        _check_prompt(prompt_ids, lane, settings, vocab)
        max_tokens = _max_tokens(requested, len(prompt_ids), lane, settings)
        params = SamplingParams(
            max_tokens=max_tokens,
            temperature=body.temperature,
            top_p=body.top_p,
            seed=body.seed,
            stop=body.stop_strings(),
            n=body.n,
        )
        requests.append(
            GenerationRequest(
                request_id=request_id if len(prompts) == 1 else f"{request_id}-{i}",
                model=body.model,
                prompt_ids=tuple(prompt_ids),
                params=params,
                adapter=adapter,
                timeout_s=settings.request_timeout_s,
            )
        )
    return requests


def _check_prompt(prompt_ids: list[int], lane: Lane, settings: Settings, vocab: int) -> None:
    if not prompt_ids:
        raise InvalidRequest("the prompt is empty", param="prompt")
    if len(prompt_ids) > settings.max_prompt_tokens:
        raise ContextLengthExceeded(
            f"the prompt is {len(prompt_ids)} tokens long, but this server accepts at most "
            f"{settings.max_prompt_tokens} (max_prompt_tokens)",
            param="messages",
        )
    if any(not 0 <= t < vocab for t in prompt_ids):
        raise InvalidRequest(f"prompt token ids must lie in [0, {vocab})", param="prompt")


def _max_tokens(requested: int | None, prompt: int, lane: Lane, settings: Settings) -> int:
    context = lane.backend.info.max_context
    room = context - prompt
    if room < 1:
        raise ContextLengthExceeded(
            f"this model's context is {context} tokens and the prompt alone uses {prompt}",
            param="messages",
        )
    if requested is None:
        return min(settings.default_max_tokens, room)
    if requested > room:
        raise ContextLengthExceeded(
            f"this model's context is {context} tokens; the prompt uses {prompt}, so max_tokens "
            f"can be at most {room} (asked: {requested})",
            param="max_tokens",
        )
    return requested


# ---- waiting for the engine ----


async def collect(submissions: list[Submission], is_disconnected) -> list[RequestRecord]:
    """Wait for every submission to finish; cancel them all if the client goes away."""
    watcher = asyncio.create_task(_cancel_on_disconnect(submissions, is_disconnected))
    try:
        records = []
        for submission in submissions:
            async for event in submission.events():
                if isinstance(event, RequestFinished):
                    records.append(event.record)
    finally:
        watcher.cancel()
    return records


def raise_for_outcome(records: list[RequestRecord], settings: Settings) -> None:
    for record in records:
        make_error = ABORTS.get(record.outcome)
        if make_error:
            raise make_error(settings)


async def _cancel_on_disconnect(submissions: list[Submission], is_disconnected) -> None:
    while True:
        await asyncio.sleep(DISCONNECT_POLL_S)
        if await is_disconnected():
            for submission in submissions:
                submission.cancel()
            return


async def merged_events(submissions: list[Submission]) -> AsyncIterator[tuple[int, object]]:
    """Events of several submissions as they come, tagged with the submission's index."""
    if len(submissions) == 1:
        async for event in submissions[0].events():
            yield 0, event
        return
    queue: asyncio.Queue = asyncio.Queue()

    async def pump(index: int, submission: Submission) -> None:
        async for event in submission.events():
            await queue.put((index, event))

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(submissions)]
    try:
        finished = 0
        while finished < len(submissions):
            index, event = await queue.get()
            finished += isinstance(event, RequestFinished)
            yield index, event
    finally:
        for task in tasks:
            task.cancel()


# ---- server-sent events ----


def sse(payload: dict | str) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n"


@dataclass
class StreamState:
    """What a stream has sent, for the usage chunk and the metrics outcome."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    outcome: FinishReason = FinishReason.STOP
    records: list[RequestRecord] = field(default_factory=list)


async def stream_events(
    submissions: list[Submission],
    n: int,
    chunk: Callable[[int, str | None, str | None], dict],
    usage_chunk: Callable[[dict], dict] | None,
    settings: Settings,
    state: StreamState,
) -> AsyncIterator[str]:
    """SSE lines: one chunk per text delta and per finished choice, then usage, then [DONE].

    `chunk(index, text, finish_reason)` builds one chunk body in the endpoint's own shape.
    On cancellation (the client went away) every submission is cancelled.
    """
    try:
        async for sub_index, event in merged_events(submissions):
            index_base = sub_index * n
            if isinstance(event, TextDelta):
                yield sse(chunk(index_base + event.index, event.text, None))
            elif isinstance(event, ChoiceFinished) and event.reason.value in ("stop", "length"):
                yield sse(chunk(index_base + event.index, None, event.reason.value))
            elif isinstance(event, RequestFinished):
                _account(state, event.record)
        error = _stream_error(state, settings)
        if error is not None:
            yield sse(error.body())
        elif usage_chunk is not None:
            total = state.prompt_tokens + state.completion_tokens
            usage = {
                "prompt_tokens": state.prompt_tokens,
                "completion_tokens": state.completion_tokens,
                "total_tokens": total,
            }
            yield sse(usage_chunk(usage))
        yield sse("[DONE]")
    finally:
        if len(state.records) < len(submissions):
            state.outcome = FinishReason.CANCELLED
            for submission in submissions:
                submission.cancel()


def _account(state: StreamState, record: RequestRecord) -> None:
    state.records.append(record)
    state.prompt_tokens += record.prompt_tokens
    state.completion_tokens += sum(record.completion_tokens)
    if record.outcome in ABORTS:
        state.outcome = record.outcome


def _stream_error(state: StreamState, settings: Settings) -> ServerError | None:
    if state.outcome is FinishReason.CANCELLED:
        return None  # nobody is listening
    make_error = ABORTS.get(state.outcome)
    return make_error(settings) if make_error else None
