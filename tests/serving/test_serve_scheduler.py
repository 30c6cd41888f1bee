"""Continuous batching with a fake model whose cache holds the tokens themselves."""

from __future__ import annotations

import pytest

from serving.serve_fakes import EOS, FakeBackend, next_token, reference
from tuneloop.serve.batch_runner import BatchRunner
from tuneloop.serve.jobs import new_job
from tuneloop.serve.requests import (
    ChoiceFinished,
    FinishReason,
    GenerationRequest,
    RequestFinished,
    SamplingParams,
    TextDelta,
)
from tuneloop.serve.scheduler import QueueFull, Scheduler, SchedulerLimits


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Collector:
    """Gathers one job's events, as the HTTP layer would."""

    def __init__(self) -> None:
        self.events = []

    def __call__(self, event) -> None:
        self.events.append(event)

    def text(self, index: int = 0) -> str:
        return "".join(e.text for e in self.events if isinstance(e, TextDelta) and e.index == index)

    def reasons(self) -> list[FinishReason]:
        return [e.reason for e in self.events if isinstance(e, ChoiceFinished)]

    @property
    def record(self):
        done = [e for e in self.events if isinstance(e, RequestFinished)]
        return done[0].record if done else None


def make_scheduler(adapters=(), **limits):
    backend = FakeBackend(adapters)
    clock = Clock()
    scheduler = Scheduler("fake", BatchRunner(backend), SchedulerLimits(**limits), clock=clock)
    return scheduler, backend, clock


def submit(scheduler, prompt, *, max_tokens=8, adapter=None, clock=None, timeout=None, **params):
    collector = Collector()
    request = GenerationRequest(
        request_id=f"r{len(prompt)}",
        model="fake",
        prompt_ids=tuple(prompt),
        params=SamplingParams(max_tokens=max_tokens, temperature=0, **params),
        adapter=adapter,
        timeout_s=timeout,
    )
    job = new_job(
        request, FakeBackend().tokenizer, collector, lane="fake", now=clock() if clock else 0
    )
    scheduler.add(job)
    return job, collector


def run(scheduler, limit=200):
    steps = 0
    while scheduler.has_work():
        scheduler.step()
        steps += 1
        assert steps < limit, "the scheduler never finished"
    return steps


def output_ids(job):
    return job.sequences[0].token_ids


def prompt_without_early_eos(seed: int, length: int, steps: int, adapter=None) -> list[int]:
    """A prompt whose reference continuation runs `steps` tokens without hitting EOS."""
    for shift in range(200):
        prompt = [(seed * 13 + i * 5 + shift) % 39 + 1 for i in range(length)]
        if len(reference(prompt, steps, adapter)) == steps:
            return prompt
    raise AssertionError("no prompt found")


def test_single_request_matches_the_model_alone():
    scheduler, _, _ = make_scheduler()
    prompt = prompt_without_early_eos(1, 5, 8)
    job, events = submit(scheduler, prompt, max_tokens=8)
    run(scheduler)
    assert output_ids(job) == reference(prompt, 8)
    assert events.reasons() == [FinishReason.LENGTH]
    assert events.record.prompt_tokens == 5 and events.record.completion_tokens == [8]


def test_requests_join_a_running_batch_and_keep_their_outputs():
    """Different lengths, admitted at different steps: each output equals its solo run."""
    scheduler, backend, _ = make_scheduler(max_batch_size=8)
    prompts = [prompt_without_early_eos(s, n, 12) for s, n in [(1, 3), (2, 11), (3, 6), (4, 1)]]
    jobs = [submit(scheduler, prompts[0], max_tokens=12)[0]]
    scheduler.step()
    scheduler.step()
    jobs.append(submit(scheduler, prompts[1], max_tokens=12)[0])
    jobs.append(submit(scheduler, prompts[2], max_tokens=12)[0])
    scheduler.step()
    jobs.append(submit(scheduler, prompts[3], max_tokens=12)[0])
    run(scheduler)
    for job, prompt in zip(jobs, prompts, strict=True):
        assert output_ids(job) == reference(prompt, 12)
    assert max(rows for rows, width in backend.calls if width == 1) == 4, "never decoded together"


def test_mixed_adapters_in_one_batch_equal_each_adapter_alone():
    scheduler, backend, _ = make_scheduler(adapters=["a", "b"])
    cases = [(None, 4), ("a", 7), ("b", 2), ("a", 5)]
    prompts = [prompt_without_early_eos(i, n, 6, adapter) for i, (adapter, n) in enumerate(cases)]
    jobs = [
        submit(scheduler, prompt, max_tokens=6, adapter=adapter)[0]
        for prompt, (adapter, _) in zip(prompts, cases, strict=True)
    ]
    run(scheduler)
    for job, prompt, (adapter, _) in zip(jobs, prompts, cases, strict=True):
        assert output_ids(job) == reference(prompt, 6, adapter)
    assert (4, 1) in backend.calls


def test_batch_size_limit_holds_the_rest_in_the_queue():
    scheduler, backend, _ = make_scheduler(max_batch_size=2)
    jobs = [submit(scheduler, prompt_without_early_eos(i, 3, 5), max_tokens=5)[0] for i in range(5)]
    scheduler.step()
    assert scheduler.waiting == 3 and scheduler.running == 2
    run(scheduler)
    assert all(len(output_ids(job)) == 5 for job in jobs)
    assert max(rows for rows, width in backend.calls if width == 1) == 2


def test_a_full_queue_refuses_with_a_retry_estimate():
    scheduler, _, _ = make_scheduler(max_waiting=2, max_batch_size=1)
    submit(scheduler, [1, 2])
    scheduler.step()  # the batch is now full
    submit(scheduler, [3, 4])
    submit(scheduler, [5, 6])
    with pytest.raises(QueueFull) as exc:
        submit(scheduler, [7, 8])
    assert exc.value.waiting == 2 and exc.value.retry_after_s >= 1


def test_without_a_queue_requests_are_refused_only_when_the_batch_is_full():
    scheduler, _, _ = make_scheduler(max_waiting=0, max_batch_size=2)
    submit(scheduler, [1, 2])
    submit(scheduler, [3, 4])
    scheduler.step()
    with pytest.raises(QueueFull):
        submit(scheduler, [5, 6])


def test_long_prompt_is_prefilled_in_chunks_without_stalling_running_streams():
    scheduler, backend, _ = make_scheduler(prefill_chunk=4, max_step_tokens=6)
    short = prompt_without_early_eos(1, 3, 30)
    running, _ = submit(scheduler, short, max_tokens=30)
    scheduler.step()
    long_prompt = prompt_without_early_eos(2, 17, 4)
    long_job, _ = submit(scheduler, long_prompt, max_tokens=4)
    produced = []
    while long_job.prefilled < len(long_prompt):
        before = len(output_ids(running))
        scheduler.step()
        produced.append(len(output_ids(running)) - before)
    assert len(produced) >= 4, "a 17-token prompt in chunks of at most 4 takes 5 steps"
    assert all(n == 1 for n in produced), "the running stream must get a token every step"
    assert all(width <= 5 for rows, width in backend.calls)
    run(scheduler)
    assert output_ids(long_job) == reference(long_prompt, 4)
    assert output_ids(running) == reference(short, 30)


def test_cancel_frees_the_slot_and_ends_with_cancelled():
    scheduler, _, _ = make_scheduler(max_batch_size=1)
    job, events = submit(scheduler, prompt_without_early_eos(1, 3, 50), max_tokens=50)
    waiting, _ = submit(scheduler, prompt_without_early_eos(2, 3, 3), max_tokens=3)
    scheduler.step()
    scheduler.step()
    assert scheduler.runner.rows and waiting.record.prefill_start is None
    job.cancel()
    scheduler.step()
    assert events.reasons() == [FinishReason.CANCELLED]
    assert scheduler.runner.rows == [] or scheduler.runner.rows[0].job is waiting
    run(scheduler)
    assert len(output_ids(waiting)) == 3


def test_deadline_ends_waiting_and_running_requests():
    scheduler, _, clock = make_scheduler(max_batch_size=1)
    running, running_events = submit(
        scheduler, prompt_without_early_eos(1, 3, 50), max_tokens=50, clock=clock, timeout=5
    )
    queued, queued_events = submit(scheduler, [1, 2], max_tokens=50, clock=clock, timeout=5)
    scheduler.step()
    clock.now = 6
    scheduler.step()
    assert running_events.reasons() == [FinishReason.TIMEOUT]
    assert queued_events.reasons() == [FinishReason.TIMEOUT]
    assert not scheduler.has_work() and scheduler.runner.rows == []


def test_end_token_stops_with_reason_stop():
    scheduler, _, _ = make_scheduler()
    prompt = next(
        [a, b] for a in range(1, 40) for b in range(1, 40) if next_token([a, b], None) == EOS
    )
    job, events = submit(scheduler, prompt, max_tokens=5)
    run(scheduler)
    assert output_ids(job) == [] and events.reasons() == [FinishReason.STOP]


def test_stop_string_ends_the_choice_and_is_not_sent():
    scheduler, _, _ = make_scheduler()
    prompt = prompt_without_early_eos(3, 4, 12)
    full = FakeBackend().tokenizer.decode(reference(prompt, 12))
    stop = full[5:7]
    job, events = submit(scheduler, prompt, max_tokens=12, stop=(stop,))
    run(scheduler)
    assert events.text() == full[: full.index(stop)]
    assert events.reasons() == [FinishReason.STOP]


def test_several_choices_share_one_prefill():
    scheduler, backend, _ = make_scheduler()
    prompt = prompt_without_early_eos(4, 6, 5)
    job, events = submit(scheduler, prompt, max_tokens=5, n=3)
    run(scheduler)
    assert [s.token_ids for s in job.sequences] == [reference(prompt, 5)] * 3
    assert sum(1 for rows, width in backend.calls if width > 1) == 1
    assert events.text(2) == events.text(0) != ""


def test_cache_budget_limits_admission():
    scheduler, _, _ = make_scheduler(max_batch_tokens=30)
    submit(scheduler, [1, 2, 3, 4, 5], max_tokens=15)  # reserves 20 cells
    submit(scheduler, [1, 2, 3, 4, 5], max_tokens=15)
    scheduler.step()
    assert scheduler.running == 1 and scheduler.waiting == 1


def test_failed_step_ends_requests_with_error():
    scheduler, backend, _ = make_scheduler()
    _, events = submit(scheduler, [1, 2, 3], max_tokens=5)
    backend.fail_next = True
    with pytest.raises(RuntimeError):
        scheduler.step()
    scheduler.abort_all(FinishReason.ERROR)
    assert events.reasons() == [FinishReason.ERROR] and events.record is not None
    assert not scheduler.has_work()
