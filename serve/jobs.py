"""The engine's mutable view of a request: a job with one sequence per choice."""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from tuneloop.serve.requests import (
    Event,
    FinishReason,
    GenerationRequest,
    RequestRecord,
)
from tuneloop.serve.sampling import RowSampling, make_generator
from tuneloop.serve.text_stream import TextStream


class JobState(enum.Enum):
    WAITING = "waiting"
    PREFILLING = "prefilling"
    RUNNING = "running"
    DONE = "done"


@dataclass(eq=False)
class Sequence:
    """One choice of a job: its generated tokens and the text sent so far."""

    job: Job
    index: int
    text: TextStream
    sampling: RowSampling
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    last_token_at: float | None = None
    unsent: str = ""
    """Text of accepted tokens not yet sent (a speculative pass sends its tokens at once)."""
    guess: tuple | None = None
    """The draft heads' output at the position that chose the last token (ids [3], probs [2];
    `draft_heads.guessed` reads it), when the runner speculates with heads."""

    @property
    def adapter(self) -> str | None:
        return self.job.request.adapter

    @property
    def last_token(self) -> int:
        return self.token_ids[-1]

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None


@dataclass(eq=False)
class Job:
    """A request inside the engine. `cancel` may be called from any thread."""

    request: GenerationRequest
    sink: Callable[[Event], None]
    record: RequestRecord
    deadline: float | None
    sequences: list[Sequence] = field(default_factory=list)
    state: JobState = JobState.WAITING
    prefilled: int = 0
    """Prompt tokens already in the cache."""
    _cancel_reason: FinishReason | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def prompt(self) -> tuple[int, ...]:
        return self.request.prompt_ids

    @property
    def rows(self) -> int:
        """Batch rows the job occupies once running: one per unfinished choice."""
        return sum(not s.finished for s in self.sequences)

    @property
    def reserved_tokens(self) -> int:
        """Cache cells the job may need at most: prompt plus max_tokens for every choice."""
        return self.request.params.n * (len(self.prompt) + self.request.params.max_tokens)

    def cancel(self, reason: FinishReason = FinishReason.CANCELLED) -> None:
        with self._lock:
            if self._cancel_reason is None:
                self._cancel_reason = reason

    @property
    def cancel_reason(self) -> FinishReason | None:
        with self._lock:
            return self._cancel_reason


def new_job(
    request: GenerationRequest,
    tokenizer,
    sink: Callable[[Event], None],
    *,
    lane: str,
    now: float,
) -> Job:
    """A waiting job with one sequence per choice (choice i of a seeded request uses seed + i)."""
    params = request.params
    record = RequestRecord(
        request_id=request.request_id,
        model=request.model,
        adapter=request.adapter,
        lane=lane,
        arrival=now,
        prompt_ids=request.prompt_ids,
        messages=request.messages,
    )
    deadline = None if request.timeout_s is None else now + request.timeout_s
    job = Job(request=request, sink=sink, record=record, deadline=deadline)
    for index in range(params.n):
        generator = None
        if params.temperature > 0:
            seed = None if params.seed is None else params.seed + index
            generator = make_generator(seed)
        sampling = RowSampling(params.temperature, params.top_p, generator)
        job.sequences.append(Sequence(job, index, TextStream(tokenizer, params.stop), sampling))
    return job
