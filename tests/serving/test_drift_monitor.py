"""The drift monitor: windows per adapter, no score below the minimum count, scores that stay
low in distribution and rise when traffic shifts, gauges on a fresh registry, and the opt-in
export of drifted prompts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from serving.drift_fakes import fake_lane, served, write_profile
from tuneloop.data_formats import parse_file
from tuneloop.drift_profile import PSI_SIGNIFICANT, ReferenceProfile
from tuneloop.serve.drift_export import DriftExporter
from tuneloop.serve.drift_monitor import DriftMonitor
from tuneloop.serve.drift_window import DriftWindow, request_features
from tuneloop.serve.metrics import Metrics
from tuneloop.serve.requests import FinishReason
from tuneloop.serve.settings import Settings

PROMPT_FEATURES = ("prompt_tokens", "rare_token_share", "embedding_distance")
ANSWER_FEATURES = ("completion_tokens", "completion_logprob")
SCALARS = PROMPT_FEATURES + ANSWER_FEATURES


@pytest.fixture(scope="module")
def profile_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("triage")
    write_profile(folder)
    return folder


def make_monitor(profile_dir, tmp_path=None, **overrides):
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.add_model("base", None, {"backend": "torch"})
    metrics.add_model("base", "triage", {"backend": "torch"})
    settings = Settings(drift_window=200, drift_min_requests=100, **overrides)
    exporter = None
    if settings.drift_export_dir is not None:
        exporter = DriftExporter(settings.drift_export_dir, 1_000_000, metrics)
    monitor = DriftMonitor(metrics, settings, exporter)
    monitor.attach([fake_lane(profile_dir)])
    return monitor, registry


def score(registry, feature, method, adapter="triage"):
    labels = {"model": "base", "adapter": adapter, "feature": feature, "method": method}
    return registry.get_sample_value("tuneloop_drift_score", labels)


def feed(monitor, n, *, drifted, seed=1):
    rng = np.random.default_rng(seed)
    for i in range(n):
        monitor.on_request_finished(served(rng, drifted=drifted, i=i))
    monitor.refresh()


def test_no_score_below_the_minimum_count_then_every_feature_is_exported(profile_dir):
    monitor, registry = make_monitor(profile_dir)
    window = {"model": "base", "adapter": "triage"}
    assert registry.get_sample_value("tuneloop_drift_window_requests", window) == 0
    feed(monitor, 99, drifted=False)
    assert registry.get_sample_value("tuneloop_drift_window_requests", window) == 99
    assert score(registry, "prompt_tokens", "psi") is None
    feed(monitor, 1, drifted=False)
    for feature in PROMPT_FEATURES:
        assert score(registry, feature, "psi") is not None, feature
        assert score(registry, feature, "js") is not None, feature
    assert score(registry, "embedding", "cosine") is not None
    # answers are compared with the first full window of served answers: none yet
    assert all(score(registry, f, "psi") is None for f in ANSWER_FEATURES)
    feed(monitor, 100, drifted=False)
    for feature in ANSWER_FEATURES:
        assert score(registry, feature, "psi") < 0.05, feature  # the baseline itself
    # the base model has no profile: no drift series for it
    assert score(registry, "prompt_tokens", "psi", adapter="none") is None


def test_in_distribution_stays_low_and_a_shift_raises_psi(profile_dir):
    monitor, registry = make_monitor(profile_dir)
    feed(monitor, 200, drifted=False, seed=2)
    in_distribution = {f: score(registry, f, "psi") for f in SCALARS}
    assert max(in_distribution.values()) < 0.15, in_distribution
    cosine = score(registry, "embedding", "cosine")
    assert cosine < 0.05
    assert not monitor.high
    feed(monitor, 60, drifted=True, seed=3)
    shifted = {f: score(registry, f, "psi") for f in SCALARS}
    assert shifted["rare_token_share"] > PSI_SIGNIFICANT
    assert shifted["prompt_tokens"] > PSI_SIGNIFICANT
    assert shifted["embedding_distance"] > PSI_SIGNIFICANT
    assert score(registry, "embedding", "cosine") > cosine  # the centroid moves more slowly
    # the drifted answers are less likely than the served baseline's
    assert shifted["completion_logprob"] > PSI_SIGNIFICANT
    assert ("base", "triage") in monitor.high


def test_window_slides_so_drift_clears_when_traffic_returns(profile_dir):
    monitor, registry = make_monitor(profile_dir)
    feed(monitor, 200, drifted=False, seed=4)
    feed(monitor, 200, drifted=True)
    assert score(registry, "rare_token_share", "psi") > 1
    assert score(registry, "embedding", "cosine") > 1  # the centroid points the other way
    feed(monitor, 200, drifted=False, seed=5)
    assert score(registry, "rare_token_share", "psi") < 0.15
    assert not monitor.high


def test_truncated_answers_add_no_completion_length(profile_dir):
    rng = np.random.default_rng(0)
    window = DriftWindow(ReferenceProfile.load(profile_dir / "reference_profile.json"), 10, 10)
    stopped, truncated = served(rng, drifted=False), served(rng, drifted=False)
    truncated.finish_reasons = [FinishReason.LENGTH]
    assert window.add(stopped) and window.add(truncated)
    first, second = (
        request_features(window.scorer, stopped),
        request_features(window.scorer, truncated),
    )
    # the answer and its end token, as the reference counts them
    assert first["completion_tokens"] == len(stopped.output_logprobs[0])
    assert "completion_tokens" not in second and "completion_logprob" in second


def test_cancelled_requests_are_not_scored(profile_dir):
    monitor, registry = make_monitor(profile_dir)
    rng = np.random.default_rng(0)
    for i in range(120):
        record = served(rng, drifted=False, i=i)
        record.finish_reasons = [FinishReason.CANCELLED]
        monitor.on_request_finished(record)
    monitor.refresh()
    labels = {"model": "base", "adapter": "triage"}
    assert registry.get_sample_value("tuneloop_drift_window_requests", labels) == 0


def test_export_is_off_by_default(profile_dir):
    assert Settings().drift_export_dir is None
    monitor, _ = make_monitor(profile_dir)
    assert monitor.exporter is None
    feed(monitor, 200, drifted=True)  # high drift, nothing to write and nothing fails


def test_drifted_prompts_are_exported_redacted_as_chat_jsonl(profile_dir, tmp_path, caplog):
    out = tmp_path / "export"
    monitor, registry = make_monitor(profile_dir, drift_export_dir=out)
    feed(monitor, 150, drifted=False, seed=7)
    assert not out.exists()  # in distribution: nothing exported
    feed(monitor, 100, drifted=True, seed=8)
    feed(monitor, 5, drifted=True, seed=9)  # arrive while drift is high
    path = out / "triage.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) >= 5
    fmt, examples, problems = parse_file(path)
    assert fmt == "chat" and not problems and len(examples) == len(lines)
    first = json.loads(lines[0])
    text = json.dumps(first["messages"])
    assert "4111 1111" not in text and "jane@example.com" not in text and "7946" not in text
    assert "[CARD]" in text and "[EMAIL]" in text and "[PHONE]" in text
    assert first["metadata"]["adapter"] == "triage" and "review" in first["metadata"]
    assert first["metadata"]["drift_psi"]["rare_token_share"] > PSI_SIGNIFICANT
    exported = registry.get_sample_value(
        "tuneloop_drift_exported_prompts_total", {"model": "base", "adapter": "triage"}
    )
    assert exported == len(lines)
    assert "4111" not in caplog.text and "jane@" not in caplog.text


def test_export_stops_at_its_size_cap(tmp_path, caplog):
    rng = np.random.default_rng(0)
    exporter = DriftExporter(tmp_path, max_bytes=2000)
    for i in range(20):
        exporter.submit(("base", "triage"), served(rng, drifted=True, i=i), {"x": 1.0})
    exporter.flush()
    size = (tmp_path / "triage.jsonl").stat().st_size
    assert 0 < size <= 2000 and exporter.written < 20
    assert "cap" in caplog.text


def test_requests_sent_as_token_ids_are_not_exported(tmp_path):
    rng = np.random.default_rng(0)
    record = served(rng, drifted=True)
    record.messages = None
    exporter = DriftExporter(tmp_path, max_bytes=10_000)
    exporter.submit(("base", "triage"), record, {})
    exporter.flush()
    assert exporter.written == 0


def test_unloaded_adapter_loses_its_series(profile_dir):
    monitor, registry = make_monitor(profile_dir)
    feed(monitor, 120, drifted=False)
    assert score(registry, "prompt_tokens", "psi") is not None
    monitor._lanes[0].backend.adapters.remove("triage")
    monitor.refresh()
    assert score(registry, "prompt_tokens", "psi") is None


def test_backend_without_hidden_states_scores_the_other_features(profile_dir):
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.add_model("base", "triage", {"backend": "onnx"})
    monitor = DriftMonitor(metrics, Settings(drift_window=100, drift_min_requests=100))
    monitor.attach([fake_lane(profile_dir, pooled=False)])
    rng = np.random.default_rng(0)
    for i in range(100):
        record = served(rng, drifted=False, i=i)
        record.prompt_embedding = None
        monitor.on_request_finished(record)
    monitor.refresh()
    assert score(registry, "prompt_tokens", "psi") is not None
    assert score(registry, "embedding", "cosine") is None
    assert score(registry, "embedding_distance", "psi") is None


def test_default_threshold_is_the_significant_psi():
    from tuneloop.serve.settings import DRIFT_THRESHOLD

    assert DRIFT_THRESHOLD == PSI_SIGNIFICANT == Settings().drift_threshold


def test_min_requests_may_not_exceed_the_window():
    with pytest.raises(ValueError, match="drift_min_requests"):
        Settings(drift_window=50, drift_min_requests=60)
