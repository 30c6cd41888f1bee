"""Server-sent events in OpenAI's chunk shapes, from a request's engine events.

One `ChunkWriter` per streamed response builds the chunk bodies (chat deltas with the role in
each choice's first chunk, or completion texts with the echoed prompt first); `stream_events`
turns the engine's events into `data: ...` lines: a chunk per text delta, one with each
choice's finish reason, the usage chunk if asked for, then `data: [DONE]`. An engine failure
or a shutdown mid-stream becomes an OpenAI error object in the stream (the status line has
long been sent); a client that leaves cancels its sequences.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

from tuneloop.serve.completions import ABORTS, merged_events
from tuneloop.serve.engine import Submission
from tuneloop.serve.errors import ServerError
from tuneloop.serve.requests import (
    ChoiceFinished,
    FinishReason,
    RequestFinished,
    RequestRecord,
    TextDelta,
)
from tuneloop.serve.settings import Settings


@dataclass
class ChunkWriter:
    kind: Literal["chat.completion.chunk", "text_completion"]
    response_id: str
    created: int
    model: str
    n: int
    include_usage: bool
    echoes: list[str] = field(default_factory=list)
    """Per prompt, text to put before its choices (completions with `echo`)."""
    _started: set[int] = field(default_factory=set)

    def chunk(self, index: int, text: str | None, finish: str | None) -> dict:
        first = index not in self._started
        self._started.add(index)
        if self.kind == "chat.completion.chunk":
            delta = {} if text is None else {"content": text}
            if first:
                delta = {"role": "assistant", **delta}
            choice = {"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}
        else:
            prefix = self.echoes[index // self.n] if first and self.echoes else ""
            choice = {
                "index": index,
                "text": prefix + (text or ""),
                "finish_reason": finish,
                "logprobs": None,
            }
        return self._body([choice])

    def usage(self, state: StreamState) -> dict:
        usage = {
            "prompt_tokens": state.prompt_tokens,
            "completion_tokens": state.completion_tokens,
            "total_tokens": state.prompt_tokens + state.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": state.cached_prompt_tokens},
        }
        return self._body([]) | {"usage": usage}

    def _body(self, choices: list[dict]) -> dict:
        body = {
            "id": self.response_id,
            "object": self.kind,
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if self.include_usage:
            body["usage"] = None  # OpenAI sends null here, and the counts in a last chunk
        return body


@dataclass
class StreamState:
    """What a stream has sent, for the usage chunk, the access log and the metrics."""

    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    completion_tokens: int = 0
    outcome: FinishReason = FinishReason.STOP
    records: list[RequestRecord] = field(default_factory=list)


def sse(payload: dict | str) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n"


async def stream_events(
    submissions: list[Submission], writer: ChunkWriter, settings: Settings, state: StreamState
) -> AsyncIterator[str]:
    try:
        async for sub_index, event in merged_events(submissions):
            index_base = sub_index * writer.n
            if isinstance(event, TextDelta):
                yield sse(writer.chunk(index_base + event.index, event.text, None))
            elif isinstance(event, ChoiceFinished) and event.reason.value in ("stop", "length"):
                yield sse(writer.chunk(index_base + event.index, None, event.reason.value))
            elif isinstance(event, RequestFinished):
                _account(state, event.record)
        error = _stream_error(state, settings)
        if error is not None:
            yield sse(error.body())
        elif writer.include_usage:
            yield sse(writer.usage(state))
        yield sse("[DONE]")
    finally:
        if len(state.records) < len(submissions):  # the client left before the end
            state.outcome = FinishReason.CANCELLED
            for submission in submissions:
                submission.cancel()


def _account(state: StreamState, record: RequestRecord) -> None:
    state.records.append(record)
    state.prompt_tokens += record.prompt_tokens
    state.cached_prompt_tokens += record.cached_prompt_tokens
    state.completion_tokens += sum(record.completion_tokens)
    if record.outcome in ABORTS:
        state.outcome = record.outcome


def _stream_error(state: StreamState, settings: Settings) -> ServerError | None:
    if state.outcome is FinishReason.CANCELLED:
        return None  # nobody is listening
    make_error = ABORTS.get(state.outcome)
    return make_error(settings) if make_error else None
