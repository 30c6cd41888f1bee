"""The engine: one worker thread that steps every lane's scheduler, and the async door to it.

The HTTP side calls `submit`, which queues a job on the lane its model id names (or raises
`Overloaded` when the queue is full, `Unavailable` while draining) and returns a `Submission`
whose `events()` yields the engine's events on the event loop. The worker thread runs
scheduler steps for every lane with work, and between steps runs commands that must not race
a forward pass (loading and unloading adapters).

The worker is the one catch-all boundary around model code: a step that raises ends the
requests of that lane with an error, logs the traceback, and the server carries on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from tuneloop.serve.errors import Overloaded, Unavailable
from tuneloop.serve.jobs import Job, new_job
from tuneloop.serve.lanes import Lane, ServedModels
from tuneloop.serve.requests import (
    Event,
    FinishReason,
    GenerationRequest,
    RequestFinished,
    RequestRecord,
    SamplingParams,
    StepStats,
)
from tuneloop.serve.scheduler import QueueFull

log = logging.getLogger(__name__)

IDLE_WAIT_S = 0.5
WARM_UP_TIMEOUT_S = 600
RETRY_COMMAND = object()
"""Returned by a worker command that can't run yet; it is tried again after the next step."""


class Observer(Protocol):
    """Receives the engine's plain data, on the worker thread (metrics, drift features)."""

    def on_step(self, stats: StepStats) -> None: ...

    def on_request_finished(self, record: RequestRecord) -> None: ...


@dataclass
class Submission:
    job: Job
    queue: asyncio.Queue
    lane: Lane

    async def events(self) -> AsyncIterator[Event]:
        """The job's events until (and including) its `RequestFinished`."""
        while True:
            event = await self.queue.get()
            yield event
            if isinstance(event, RequestFinished):
                return

    def cancel(self, reason: FinishReason = FinishReason.CANCELLED) -> None:
        self.job.cancel(reason)


class Engine:
    def __init__(self, lanes: list[Lane], observers: list[Observer] | None = None) -> None:
        self.models = ServedModels(lanes)
        self.observers = list(observers or [])
        self.draining = False
        self._wake = threading.Event()
        self._stopping = False
        self._commands: deque[tuple[Callable[[], Any], concurrent.futures.Future]] = deque()
        self._thread = threading.Thread(target=self._work, name="tuneloop-engine", daemon=True)

    @property
    def lanes(self) -> list[Lane]:
        return self.models.lanes

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        for observer in self.observers:
            close = getattr(observer, "close", None)  # e.g. the drift monitor's thread
            if close is not None:
                close()

    # ---- the async side ----

    def submit(self, request: GenerationRequest, lane: Lane) -> Submission:
        if self.draining:
            raise Unavailable("the server is shutting down and accepts no new requests")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        def sink(event: Event) -> None:  # called on the worker thread
            if isinstance(event, RequestFinished):
                self._notify_finished(event.record)
            with contextlib.suppress(RuntimeError):  # the event loop has closed: nobody listens
                loop.call_soon_threadsafe(queue.put_nowait, event)

        job = new_job(request, lane.tokenizer, sink, lane=lane.name, now=time.monotonic())
        try:
            lane.scheduler.add(job)
        except QueueFull as exc:
            raise Overloaded(
                f"the server is at capacity ({exc.waiting} requests waiting for "
                f"{lane.name}); retry after {exc.retry_after_s:.0f} s",
                retry_after_s=exc.retry_after_s,
            ) from exc
        self._wake.set()
        return Submission(job, queue, lane)

    async def run_on_worker(self, command: Callable[[], Any]) -> Any:
        """Run `command` on the worker thread between two steps and return its result."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._commands.append((command, future))
        self._wake.set()
        return await asyncio.wrap_future(future)

    def busy(self) -> bool:
        return any(lane.scheduler.has_work() for lane in self.lanes)

    def abort_all(self, reason: FinishReason) -> None:
        """End every request now (shutdown grace period over); runs on the worker thread."""
        done = threading.Event()

        def abort() -> None:
            for lane in self.lanes:
                lane.scheduler.abort_all(reason)
            done.set()

        self._commands.append((abort, concurrent.futures.Future()))
        self._wake.set()
        done.wait(timeout=30)

    # ---- warm-up, from a plain thread ----

    def warm_up(self, prompt_ids: Callable[[Lane], tuple[int, ...]]) -> None:
        """Generate two tokens on every lane (and adapter) so the first real request is fast."""
        for model, (lane, adapter) in self.models.ids().items():
            finished = threading.Event()
            records: list[RequestRecord] = []

            def sink(event: Event, finished=finished, records=records) -> None:
                if isinstance(event, RequestFinished):
                    records.append(event.record)
                    finished.set()

            request = GenerationRequest(
                request_id=f"warm-up-{model}",
                model=model,
                prompt_ids=prompt_ids(lane),
                params=SamplingParams(max_tokens=2, temperature=0),
                adapter=adapter,
            )
            lane.scheduler.add(new_job(request, lane.tokenizer, sink, lane=lane.name, now=0))
            self._wake.set()
            if not finished.wait(WARM_UP_TIMEOUT_S):
                raise RuntimeError(f"warm-up generation on {model} did not finish")
            if FinishReason.ERROR in records[0].finish_reasons:
                raise RuntimeError(f"warm-up generation failed on {model}; see the log above")

    # ---- the worker thread ----

    def _work(self) -> None:
        while not self._stopping:
            self._run_commands()
            busy = [lane for lane in self.lanes if lane.scheduler.has_work()]
            if not busy:
                self._wake.wait(IDLE_WAIT_S)
                self._wake.clear()
                continue
            for lane in busy:
                self._step(lane)

    def _step(self, lane: Lane) -> None:
        try:
            stats = lane.scheduler.step()
        except Exception:  # the boundary around model code: fail this lane's requests, go on
            log.exception("engine step failed on %s; ending its requests", lane.name)
            lane.scheduler.abort_all(FinishReason.ERROR)
            return
        for observer in self.observers:
            observer.on_step(stats)

    def _run_commands(self) -> None:
        for _ in range(len(self._commands)):
            command, future = self._commands.popleft()
            if future.cancelled():
                continue
            try:
                result = command()
            except Exception as exc:
                future.set_exception(exc)
                continue
            if result is RETRY_COMMAND:
                self._commands.append((command, future))
            else:
                future.set_result(result)

    def _notify_finished(self, record: RequestRecord) -> None:
        for observer in self.observers:
            try:
                observer.on_request_finished(record)
            except Exception:
                log.exception("observer %r failed", observer)
