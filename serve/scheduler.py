"""Continuous batching: at every decode step, admit waiting requests and retire finished ones.

One scheduler drives one model (a lane). Each call of `step()` is one iteration:

1) admit: move waiting jobs into prefill while the batch has rows and cache budget left;
2) prefill: run prompt chunks of admitted jobs, within the step's token budget, so a long
   prompt is spread over several steps and never stalls the running streams for long;
   a finished prompt yields its first token and joins the running batch;
3) decode: one forward pass gives every running sequence its next token (a sequence running
   alone may get several: the runner drafts them and the pass checks them, see `_speculate`);
4) finish: retire sequences that ended (end token, stop string, max_tokens, deadline,
   cancellation), free their rows, and report each finished request.

The scheduler is plain Python over a `BatchRunner`; it knows nothing of HTTP or tensors beyond
the logits rows it samples from. It runs on the engine's worker thread; other threads only
append to the waiting queue (under a lock) and cancel jobs.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from tuneloop.serve.batch_runner import BatchRunner
from tuneloop.serve.jobs import Job, JobState, Sequence
from tuneloop.serve.requests import (
    ChoiceFinished,
    FinishReason,
    RequestFinished,
    StepStats,
    TextDelta,
)
from tuneloop.serve.sampling import sample, token_logprobs


@dataclass(frozen=True)
class SchedulerLimits:
    max_batch_size: int = 16
    """Sequences decoded together in one step."""
    max_step_tokens: int = 512
    """Tokens one step may process: prefill chunk tokens plus one per running sequence."""
    max_batch_tokens: int = 32768
    """Cache cells the running and prefilling jobs may reserve (prompt + max_tokens each)."""
    max_waiting: int = 64
    """Jobs allowed to wait for a batch slot; beyond it, requests are refused."""
    prefill_chunk: int = 256
    """Longest piece of one prompt prefilled in a single step."""


class QueueFull(Exception):
    """The waiting queue holds `max_waiting` jobs; carries an estimate of when to retry."""

    def __init__(self, waiting: int, retry_after_s: float) -> None:
        super().__init__(f"{waiting} requests are already waiting")
        self.waiting = waiting
        self.retry_after_s = retry_after_s


class Scheduler:
    def __init__(
        self,
        name: str,
        runner: BatchRunner,
        limits: SchedulerLimits,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.runner = runner
        self.limits = limits
        self._clock = clock
        self._waiting: deque[Job] = deque()
        self._waiting_lock = threading.Lock()
        self._prefilling: list[Job] = []
        self._running: list[Job] = []
        self._recent_step_s = 0.1

    # ---- called from any thread ----

    def add(self, job: Job) -> None:
        """Queue a job, or raise QueueFull when `max_waiting` jobs already wait for a slot.

        Jobs that free batch rows will take at the next step don't count as waiting.
        """
        with self._waiting_lock:
            free_rows = max(self.limits.max_batch_size - self.running, 0)
            if len(self._waiting) >= self.limits.max_waiting + free_rows:
                raise QueueFull(len(self._waiting), self._retry_after())
            self._waiting.append(job)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def running(self) -> int:
        return sum(job.rows for job in self._running + self._prefilling)

    def has_work(self) -> bool:
        return bool(self._waiting or self._prefilling or self._running)

    def uses_adapter(self, adapter: str) -> bool:
        """Is any waiting, prefilling or running job for `adapter`?"""
        with self._waiting_lock:
            jobs = [*self._waiting, *self._prefilling, *self._running]
        return any(job.request.adapter == adapter for job in jobs)

    # ---- called from the worker thread ----

    def step(self) -> StepStats:
        started = self._clock()
        self._admit(started)  # 1) admit
        prefill_tokens = self._prefill()  # 2) prefill
        decode_rows = self._decode()  # 3) decode
        self._finish()  # 4) finish
        seconds = self._clock() - started
        self._recent_step_s = 0.8 * self._recent_step_s + 0.2 * seconds
        return StepStats(
            self.name, decode_rows, prefill_tokens, self.waiting, self.running, seconds
        )

    def abort_all(self, reason: FinishReason) -> None:
        """End every job (worker failure or shutdown) and forget all caches."""
        with self._waiting_lock:
            jobs = [*self._waiting, *self._prefilling, *self._running]
            self._waiting.clear()
        for job in jobs:
            for seq in job.sequences:
                if not seq.finished:
                    self._end(seq, reason)
            self._complete(job)
        self._prefilling, self._running = [], []
        self.runner.reset()

    # 1) admit
    def _admit(self, now: float) -> None:
        self._expire_waiting(now)
        rows = self.running
        reserved = sum(job.reserved_tokens for job in self._running + self._prefilling)
        admitted = []
        with self._waiting_lock:
            while self._waiting:
                job = self._waiting[0]
                n = len(job.sequences)
                if rows + n > self.limits.max_batch_size:
                    break
                if rows and reserved + job.reserved_tokens > self.limits.max_batch_tokens:
                    break
                self._waiting.popleft()
                rows, reserved = rows + n, reserved + job.reserved_tokens
                admitted.append(job)
        for job in admitted:  # outside the lock: request threads keep queueing meanwhile
            job.state, job.record.prefill_start = JobState.PREFILLING, now
            job.prefilled = job.record.cached_prompt_tokens = self.runner.reuse_prefix(job)
            self._prefilling.append(job)

    def _expire_waiting(self, now: float) -> None:
        with self._waiting_lock:
            ended = [job for job in self._waiting if _stop_reason(job, now)]
            for job in ended:
                self._waiting.remove(job)
        for job in ended:
            for seq in job.sequences:
                self._end(seq, _stop_reason(job, now))
            self._complete(job)

    # 2) prefill
    def _prefill(self) -> int:
        budget = max(self.limits.max_step_tokens - self.running_rows(), 0)
        chunks: list[tuple[Job, list[int]]] = []
        for job in self._prefilling:
            if job.cancel_reason or (budget <= 0 and (chunks or self._running)):
                continue
            size = min(len(job.prompt) - job.prefilled, self.limits.prefill_chunk, max(budget, 1))
            chunks.append((job, list(job.prompt[job.prefilled : job.prefilled + size])))
            budget -= size
        if not chunks:
            return 0
        logits = self.runner.prefill(chunks)
        for row, (job, tokens) in enumerate(chunks):
            job.prefilled += len(tokens)
            if job.prefilled == len(job.prompt):
                self._start_generating(job, logits[row : row + 1])
        return sum(len(tokens) for _, tokens in chunks)

    def _start_generating(self, job: Job, logits) -> None:
        """The prompt is in the cache: sample each choice's first token and join the batch."""
        # Running before anything can fail, so a failure here still ends the job (abort_all).
        self._prefilling.remove(job)
        job.state = JobState.RUNNING
        self._running.append(job)
        rows = logits.expand(len(job.sequences), -1)
        tokens = sample(rows, [s.sampling for s in job.sequences])
        logprobs = token_logprobs(rows, tokens)
        for seq, token, logprob in zip(job.sequences, tokens, logprobs, strict=True):
            self._accept(seq, token, logprob)
        self.runner.join(job, [s for s in job.sequences if not s.finished])

    # 3) decode
    def _decode(self) -> int:
        rows = self.runner.rows
        if not rows:
            return 0
        if len(rows) == 1 and (draft := self.runner.draft(rows[0])):
            self._speculate(rows[0], draft)
            return 1
        logits = self.runner.decode()
        tokens = sample(logits, [s.sampling for s in rows])
        for seq, token, logprob in zip(rows, tokens, token_logprobs(logits, tokens), strict=True):
            if not seq.finished:
                self._accept(seq, token, logprob)
        return len(rows)

    def _speculate(self, seq: Sequence, draft: list[int]) -> None:
        """One pass over the last token and the drafted ones; keep drafted tokens while each
        equals the token chosen from the logits before it. Choosing as usual (greedy or
        sampled with the sequence's own generator) and comparing is speculative sampling's
        rule for a draft of probability 1, so outputs keep their distribution; the first
        difference is the pass's own token, as if no draft had been made."""
        logits = self.runner.extend(draft)
        kept = 0
        for position in range(len(draft) + 1):
            row = logits[position : position + 1]
            token = sample(row, [seq.sampling])
            self._accept(seq, token[0], token_logprobs(row, token)[0], send=False)
            if seq.finished or position == len(draft) or token[0] != draft[position]:
                break
            kept += 1
        # One chunk for the pass's tokens, as vLLM sends one per engine step: the event loop
        # writes, and a client parses, one chunk instead of several.
        self._send(seq)
        self.runner.keep_drafted(kept)
        seq.job.record.drafted_tokens += len(draft)
        seq.job.record.accepted_draft_tokens += kept

    def running_rows(self) -> int:
        return len(self.runner.rows)

    def _accept(self, seq: Sequence, token: int, logprob: float, send: bool = True) -> None:
        """Add a sampled token to a sequence, send its text (or keep it for `_send`), and end
        the sequence if it is done."""
        now = self._clock()
        seq.logprobs.append(logprob)
        job = seq.job
        if seq.last_token_at is None:
            job.record.first_token = job.record.first_token or now
        else:
            job.record.inter_token_gaps.append(now - seq.last_token_at)
        seq.last_token_at = now
        if token in self.runner.backend.eos_token_ids:
            self._end(seq, FinishReason.STOP)
            return
        seq.token_ids.append(token)
        seq.unsent += seq.text.push(token)
        if send:
            self._send(seq)
        if seq.text.stopped:
            self._end(seq, FinishReason.STOP)
        elif len(seq.token_ids) >= job.request.params.max_tokens:
            self._end(seq, FinishReason.LENGTH)

    # 4) finish
    def _finish(self) -> None:
        now = self._clock()
        for job in list(self._prefilling):
            reason = _stop_reason(job, now)
            if reason:
                self._prefilling.remove(job)
                self.runner.discard(job)
                for seq in job.sequences:
                    self._end(seq, reason)
                self._complete(job)
        leaving: set[Sequence] = set()
        for job in list(self._running):
            reason = _stop_reason(job, now)
            for seq in job.sequences:
                if reason and not seq.finished:
                    self._end(seq, reason)
                if seq.finished:
                    leaving.add(seq)
            if all(seq.finished for seq in job.sequences):
                self._running.remove(job)
                self._complete(job)
        self.runner.release(leaving)

    def _send(self, seq: Sequence) -> None:
        if seq.unsent:
            seq.job.sink(TextDelta(seq.index, seq.unsent, len(seq.token_ids)))
            seq.unsent = ""

    def _end(self, seq: Sequence, reason: FinishReason) -> None:
        seq.finish_reason = reason
        if reason not in _ABORTED:
            seq.unsent += seq.text.flush()
        self._send(seq)
        seq.job.sink(ChoiceFinished(seq.index, reason, len(seq.token_ids)))

    def _complete(self, job: Job) -> None:
        job.state = JobState.DONE
        record = job.record
        record.finished = self._clock()
        record.prompt_tokens = len(job.prompt)
        record.completion_tokens = [len(s.token_ids) for s in job.sequences]
        record.finish_reasons = [s.finish_reason for s in job.sequences]
        record.output_ids = [list(s.token_ids) for s in job.sequences]
        record.output_logprobs = [s.logprobs for s in job.sequences]
        record.texts = [s.text.text for s in job.sequences]
        job.sink(RequestFinished(record))

    def _retry_after(self) -> float:
        """Seconds until a waiting slot is likely free: the queue drains one batch per answer."""
        steps_per_answer = 64
        return max(1.0, self._recent_step_s * steps_per_answer)


_ABORTED = {FinishReason.CANCELLED, FinishReason.TIMEOUT, FinishReason.ERROR, FinishReason.SHUTDOWN}


def _stop_reason(job: Job, now: float) -> FinishReason | None:
    if job.cancel_reason:
        return job.cancel_reason
    if job.deadline is not None and now >= job.deadline:
        return FinishReason.TIMEOUT
    return None
