"""Every Prometheus metric of the server, defined once on an injected registry.

The names are an interface (dashboards and alert rules query them; see DESIGN.md) and must not
change. Labels stay small: `model` is the loaded model a request ran on (the base model's id,
or an optimized variant's `NAME:VARIANT`), `adapter` the LoRA adapter on it or `none`. Label
values are created up front for every loaded model and adapter; a request for a model that is
not served is counted under `model="unknown"`, so clients can't grow the series count.

The engine reports plain data (`StepStats`, `RequestRecord`) to `on_step` and
`on_request_finished`; the HTTP layer reports statuses to `observe_response`.
"""

from __future__ import annotations

import contextlib

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
)

from tuneloop.serve.requests import FinishReason, RequestRecord, StepStats

NO_ADAPTER = "none"
UNKNOWN = "unknown"
ERROR_KINDS = ("validation", "auth", "overloaded", "timeout", "cancelled", "internal")
# Time buckets span sub-millisecond (inter-token gaps of a small model on a GPU) to minutes
# (long generations on a CPU); token buckets step 1-2-5 like the sequence lengths they count.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
FIRST_TOKEN_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 2.5, 5, 10, 30, 60, 120,
)  # fmt: skip
INTER_TOKEN_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5,
)  # fmt: skip
QUEUE_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
TOKEN_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
BATCH_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 128, 256)
# How a request that ended without a normal finish is counted (status as an HTTP code).
OUTCOME_STATUS = {
    FinishReason.CANCELLED: ("499", "cancelled"),
    FinishReason.TIMEOUT: ("504", "timeout"),
    FinishReason.ERROR: ("500", "internal"),
    FinishReason.SHUTDOWN: ("503", "overloaded"),
}


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        request = ["model", "adapter"]
        kw = {"registry": self.registry}
        self.request_duration = Histogram(
            "tuneloop_request_duration_seconds",
            "End-to-end latency of a request, arrival to last byte",
            request,
            buckets=LATENCY_BUCKETS,
            **kw,
        )
        self.time_to_first_token = Histogram(
            "tuneloop_time_to_first_token_seconds",
            "Arrival to first generated token",
            request,
            buckets=FIRST_TOKEN_BUCKETS,
            **kw,
        )
        self.inter_token_latency = Histogram(
            "tuneloop_inter_token_latency_seconds",
            "Gap between consecutive generated tokens of one sequence",
            request,
            buckets=INTER_TOKEN_BUCKETS,
            **kw,
        )
        self.queue_wait = Histogram(
            "tuneloop_queue_wait_seconds",
            "Arrival to start of prefill",
            request,
            buckets=QUEUE_BUCKETS,
            **kw,
        )
        self.requests = Counter(
            "tuneloop_requests_total",
            "Finished requests by HTTP status (499: the client went away)",
            [*request, "status"],
            **kw,
        )
        self.errors = Counter(
            "tuneloop_request_errors_total",
            "Failed requests by kind: " + ", ".join(ERROR_KINDS),
            [*request, "kind"],
            **kw,
        )
        self.prompt_length = Histogram(
            "tuneloop_request_prompt_tokens",
            "Prompt tokens per request",
            request,
            buckets=TOKEN_BUCKETS,
            **kw,
        )
        self.completion_length = Histogram(
            "tuneloop_request_generation_tokens",
            "Generated tokens per request (all choices)",
            request,
            buckets=TOKEN_BUCKETS,
            **kw,
        )
        self.prompt_tokens = Counter(
            "tuneloop_prompt_tokens_total", "Prompt tokens processed", request, **kw
        )
        self.generated_tokens = Counter(
            "tuneloop_generated_tokens_total", "Tokens generated", request, **kw
        )
        self.cached_prompt_tokens = Counter(
            "tuneloop_cached_prompt_tokens_total",
            "Prompt tokens whose cache was reused from an earlier prompt, not computed",
            request,
            **kw,
        )
        self.drafted_tokens = Counter(
            "tuneloop_draft_tokens_total",
            "Drafted tokens checked in speculative decoding passes",
            request,
            **kw,
        )
        self.accepted_draft_tokens = Counter(
            "tuneloop_draft_accepted_tokens_total",
            "Drafted tokens kept because the model chose them too",
            request,
            **kw,
        )
        self.running = Gauge(
            "tuneloop_requests_running", "Sequences in the running batch", ["model"], **kw
        )
        self.waiting = Gauge(
            "tuneloop_requests_waiting", "Requests waiting for a batch slot", ["model"], **kw
        )
        self.batch_size = Histogram(
            "tuneloop_batch_size",
            "Sequences per decode step",
            ["model"],
            buckets=BATCH_BUCKETS,
            **kw,
        )
        self.drift = Gauge(
            "tuneloop_drift_score",
            "Distance of served traffic from the adapter's training reference",
            [*request, "feature", "method"],
            **kw,
        )
        self.drift_window_requests = Gauge(
            "tuneloop_drift_window_requests",
            "Requests in the drift window (scores are exported from the minimum count on)",
            request,
            **kw,
        )
        self.drift_exported = Counter(
            "tuneloop_drift_exported_prompts_total",
            "Prompts written to the drift export while drift was high",
            request,
            **kw,
        )
        self.model_info = Info(
            "tuneloop_model", "What each served model is", ["model", "adapter"], **kw
        )
        process_collector.ProcessCollector(registry=self.registry)
        platform_collector.PlatformCollector(registry=self.registry)
        gc_collector.GCCollector(registry=self.registry)
        self._known: set[tuple[str, str]] = set()
        self._add_series(UNKNOWN, UNKNOWN)

    # ---- the set of label values ----

    def add_model(self, model: str, adapter: str | None, info: dict[str, str]) -> None:
        """Create every series of a loaded model (or adapter), so dashboards see zeros."""
        labels = (model, adapter or NO_ADAPTER)
        self._add_series(*labels)
        self.model_info.labels(*labels).info({k: str(v) for k, v in info.items()})
        self.running.labels(model)
        self.waiting.labels(model)
        self.batch_size.labels(model)

    def remove_adapter(self, model: str, adapter: str) -> None:
        """An unloaded adapter leaves `tuneloop_model_info`; its counters keep their totals
        (removing a counter's series would read as a reset to rate())."""
        self._known.discard((model, adapter))
        _remove(self.model_info, model, adapter)

    def labels(self, model: str | None, adapter: str | None) -> tuple[str, str]:
        labels = (model or UNKNOWN, adapter or NO_ADAPTER)
        return labels if labels in self._known else (UNKNOWN, UNKNOWN)

    def _add_series(self, model: str, adapter: str) -> None:
        self._known.add((model, adapter))
        for metric in (
            self.request_duration,
            self.time_to_first_token,
            self.inter_token_latency,
            self.queue_wait,
            self.prompt_length,
            self.completion_length,
            self.prompt_tokens,
            self.generated_tokens,
            self.cached_prompt_tokens,
            self.drafted_tokens,
            self.accepted_draft_tokens,
        ):
            metric.labels(model, adapter)
        self.requests.labels(model, adapter, "200")
        for kind in ERROR_KINDS:
            self.errors.labels(model, adapter, kind)

    # ---- the engine's reports (worker thread) ----

    def on_step(self, stats: StepStats) -> None:
        self.running.labels(stats.lane).set(stats.running)
        self.waiting.labels(stats.lane).set(stats.waiting)
        if stats.decode_rows:
            self.batch_size.labels(stats.lane).observe(stats.decode_rows)

    def on_request_finished(self, record: RequestRecord) -> None:
        labels = self.labels(record.lane, record.adapter)
        if record.queue_wait is not None:
            self.queue_wait.labels(*labels).observe(record.queue_wait)
        if record.time_to_first_token is not None:
            self.time_to_first_token.labels(*labels).observe(record.time_to_first_token)
        gaps = self.inter_token_latency.labels(*labels)
        for gap in record.inter_token_gaps:
            gaps.observe(gap)
        generated = sum(record.completion_tokens)
        if record.prefill_start is not None:
            self.prompt_tokens.labels(*labels).inc(record.prompt_tokens)
            self.cached_prompt_tokens.labels(*labels).inc(record.cached_prompt_tokens)
            self.drafted_tokens.labels(*labels).inc(record.drafted_tokens)
            self.accepted_draft_tokens.labels(*labels).inc(record.accepted_draft_tokens)
            self.prompt_length.labels(*labels).observe(record.prompt_tokens)
            self.completion_length.labels(*labels).observe(generated)
        self.generated_tokens.labels(*labels).inc(generated)

    # ---- the HTTP layer's reports ----

    def observe_response(
        self,
        labels: tuple[str, str],
        status: int | str,
        seconds: float | None = None,
        error_kind: str | None = None,
    ) -> None:
        self.requests.labels(*labels, str(status)).inc()
        if error_kind:
            self.errors.labels(*labels, error_kind).inc()
        if seconds is not None:
            self.request_duration.labels(*labels).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _remove(metric, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)
