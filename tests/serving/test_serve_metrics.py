"""Metrics are recorded from the engine's plain data on an injected registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from tuneloop.serve.metrics import Metrics
from tuneloop.serve.requests import FinishReason, RequestRecord, StepStats


def make_metrics():
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.add_model("base", None, {"base": "base", "backend": "torch", "precision": "float32"})
    metrics.add_model("base", "triage", {"base": "base", "backend": "torch", "precision": "fp32"})
    return metrics, registry


def value(registry, name, **labels):
    return registry.get_sample_value(name, labels)


def test_loaded_models_have_zeroed_series_before_any_traffic():
    _, registry = make_metrics()
    labels = {"model": "base", "adapter": "triage"}
    assert value(registry, "tuneloop_generated_tokens_total", **labels) == 0
    assert value(registry, "tuneloop_requests_total", status="200", **labels) == 0
    assert value(registry, "tuneloop_request_errors_total", kind="timeout", **labels) == 0
    assert value(registry, "tuneloop_time_to_first_token_seconds_count", **labels) == 0
    assert (
        value(
            registry,
            "tuneloop_model_info",
            backend="torch",
            precision="fp32",
            base="base",
            **labels,
        )
        == 1
    )


def test_a_finished_request_feeds_every_timing_histogram():
    metrics, registry = make_metrics()
    record = RequestRecord(
        request_id="r",
        model="triage",
        adapter="triage",
        lane="base",
        arrival=10.0,
        prefill_start=10.5,
        first_token=11.0,
        finished=12.0,
        prompt_tokens=7,
        cached_prompt_tokens=4,
        drafted_tokens=6,
        accepted_draft_tokens=2,
        completion_tokens=[3, 2],
        finish_reasons=[FinishReason.STOP, FinishReason.LENGTH],
        inter_token_gaps=[0.1, 0.2, 0.1],
    )
    metrics.on_request_finished(record)
    labels = {"model": "base", "adapter": "triage"}
    assert value(registry, "tuneloop_queue_wait_seconds_sum", **labels) == 0.5
    assert value(registry, "tuneloop_time_to_first_token_seconds_sum", **labels) == 1.0
    assert value(registry, "tuneloop_inter_token_latency_seconds_count", **labels) == 3
    assert value(registry, "tuneloop_prompt_tokens_total", **labels) == 7
    assert value(registry, "tuneloop_cached_prompt_tokens_total", **labels) == 4
    assert value(registry, "tuneloop_draft_tokens_total", **labels) == 6
    assert value(registry, "tuneloop_draft_accepted_tokens_total", **labels) == 2
    assert value(registry, "tuneloop_generated_tokens_total", **labels) == 5


def test_steps_set_occupancy_and_batch_sizes():
    metrics, registry = make_metrics()
    metrics.on_step(
        StepStats("base", decode_rows=5, prefill_tokens=0, waiting=2, running=6, seconds=0.1)
    )
    assert value(registry, "tuneloop_requests_running", model="base") == 6
    assert value(registry, "tuneloop_requests_waiting", model="base") == 2
    assert value(registry, "tuneloop_batch_size_bucket", model="base", le="4.0") == 0
    assert value(registry, "tuneloop_batch_size_bucket", model="base", le="8.0") == 1


def test_unknown_models_never_create_label_values():
    metrics, registry = make_metrics()
    labels = metrics.labels("made-up-by-a-client", None)
    metrics.observe_response(labels, 404, 0.01, "validation")
    text = metrics.exposition().decode()
    assert "made-up-by-a-client" not in text
    assert (
        value(
            registry,
            "tuneloop_request_errors_total",
            model="unknown",
            adapter="unknown",
            kind="validation",
        )
        == 1
    )


def test_an_unloaded_adapter_leaves_model_info_and_new_requests_count_as_unknown():
    metrics, _ = make_metrics()
    metrics.remove_adapter("base", "triage")
    info = [line for line in metrics.exposition().decode().splitlines() if "model_info{" in line]
    assert info and not any('adapter="triage"' in line for line in info)
    assert metrics.labels("base", "triage") == ("unknown", "unknown")
