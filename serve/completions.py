"""From a validated OpenAI request to engine submissions, and back to finished records.

The handlers in `serve.routes` stay small: they call `chat_prompt` and `prepare` (prompt ids,
limits, sampling settings), submit to the engine, then either `collect` the finished records
(cancelling on disconnect) or stream them (`serve.streaming`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from tuneloop.serve.engine import Submission
from tuneloop.serve.errors import (
    ClientDisconnected,
    ContextLengthExceeded,
    DeadlineExceeded,
    InternalError,
    InvalidRequest,
    Unavailable,
    UnsupportedParameter,
)
from tuneloop.serve.lanes import Lane
from tuneloop.serve.protocol import ChatCompletionRequest, Request
from tuneloop.serve.requests import (
    FinishReason,
    GenerationRequest,
    RequestFinished,
    RequestRecord,
    SamplingParams,
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
    vocab = lane.vocab_size
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
                messages=_messages_to_export(body, i) if settings.drift_export_dir else None,
            )
        )
    return requests


def _messages_to_export(body: Request, index: int) -> tuple[dict, ...] | None:
    """The conversation of prompt `index` as chat messages, for the drift export (text only:
    a prompt sent as token ids has none)."""
    if isinstance(body, ChatCompletionRequest):
        return tuple(
            {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
            for m in body.messages
        )
    prompt = body.prompt
    texts = [prompt] if isinstance(prompt, str) else prompt
    text = texts[index] if index < len(texts) else None
    return ({"role": "user", "content": text},) if isinstance(text, str) else None


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
