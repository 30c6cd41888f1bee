"""What the HTTP layer hands the engine, and the plain data the engine hands back.

The engine never sees HTTP or JSON: it takes a `GenerationRequest` (token ids and sampling
settings) and reports, through a callback, `TextDelta`s while it generates, one
`ChoiceFinished` per choice, and at the end a `RequestFinished` carrying a `RequestRecord`:
timings and counts as plain data, which `serve.metrics` turns into Prometheus series and the
drift monitor into per-request features.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class FinishReason(str, enum.Enum):
    STOP = "stop"
    """An end token or a stop string."""
    LENGTH = "length"
    """`max_tokens` reached."""
    CANCELLED = "cancelled"
    """The client went away."""
    TIMEOUT = "timeout"
    """The request's deadline passed."""
    ERROR = "error"
    """The model worker failed; the request is reported as an internal error."""
    SHUTDOWN = "shutdown"
    """The server's shutdown grace period ran out."""


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    n: int = 1


@dataclass(frozen=True)
class GenerationRequest:
    request_id: str
    model: str
    """The served model id the client asked for."""
    prompt_ids: tuple[int, ...]
    params: SamplingParams
    adapter: str | None = None
    """The adapter applied on the lane's model, None for the model itself."""
    timeout_s: float | None = None
    """Deadline measured from arrival; None waits for ever."""
    messages: tuple[dict, ...] | None = None
    """The conversation as the client sent it; kept only when drifted prompts may be exported."""


@dataclass(frozen=True)
class TextDelta:
    index: int
    text: str
    tokens: int
    """Tokens generated for this choice so far."""


@dataclass(frozen=True)
class ChoiceFinished:
    index: int
    reason: FinishReason
    completion_tokens: int


@dataclass
class RequestRecord:
    """Timings (monotonic seconds) and counts of one finished request."""

    request_id: str
    model: str
    adapter: str | None
    lane: str
    arrival: float
    prefill_start: float | None = None
    first_token: float | None = None
    finished: float | None = None
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    """Prompt tokens whose cache was reused from an earlier prompt instead of computed."""
    drafted_tokens: int = 0
    accepted_draft_tokens: int = 0
    """Drafted tokens checked, and kept because the model chose them too (speculation)."""
    completion_tokens: list[int] = field(default_factory=list)
    finish_reasons: list[FinishReason] = field(default_factory=list)
    inter_token_gaps: list[float] = field(default_factory=list)
    prompt_ids: tuple[int, ...] = ()
    output_ids: list[list[int]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    output_logprobs: list[list[float]] = field(default_factory=list)
    """Per choice, the log-probability (temperature 1) of each sampled token, end token included."""
    prompt_embedding: Any = None
    """Mean of the prompt's last hidden states (numpy, float32), when the backend pools them."""
    messages: tuple[dict, ...] | None = None

    @property
    def queue_wait(self) -> float | None:
        return None if self.prefill_start is None else self.prefill_start - self.arrival

    @property
    def time_to_first_token(self) -> float | None:
        return None if self.first_token is None else self.first_token - self.arrival

    @property
    def duration(self) -> float | None:
        return None if self.finished is None else self.finished - self.arrival

    @property
    def outcome(self) -> FinishReason:
        """The reason that decides how the request ended as a whole (the worst choice)."""
        for reason in (
            FinishReason.ERROR,
            FinishReason.SHUTDOWN,
            FinishReason.TIMEOUT,
            FinishReason.CANCELLED,
        ):
            if reason in self.finish_reasons:
                return reason
        return (
            FinishReason.LENGTH if FinishReason.LENGTH in self.finish_reasons else FinishReason.STOP
        )


@dataclass(frozen=True)
class RequestFinished:
    record: RequestRecord


@dataclass(frozen=True)
class StepStats:
    """One scheduler iteration: what ran and how long it took."""

    lane: str
    decode_rows: int
    prefill_tokens: int
    waiting: int
    running: int
    seconds: float


Event = TextDelta | ChoiceFinished | RequestFinished
