"""The HTTP layer in-process (FastAPI's TestClient) over the fake model: failure paths."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from serving.serve_fakes import FakeBackend
from tuneloop.serve.app import build_app
from tuneloop.serve.batch_runner import BatchRunner
from tuneloop.serve.engine import Engine
from tuneloop.serve.lanes import Lane
from tuneloop.serve.metrics import Metrics
from tuneloop.serve.scheduler import Scheduler, SchedulerLimits
from tuneloop.serve.settings import Settings
from tuneloop.serve.state import ServerState

BODY = {"model": "fake", "prompt": [1, 2, 3], "max_tokens": 20, "temperature": 0}


@pytest.fixture
def setup():
    backend = FakeBackend()
    lane = Lane("fake", backend, Scheduler("fake", BatchRunner(backend), SchedulerLimits(4)))
    engine = Engine([lane])
    metrics = Metrics(CollectorRegistry())
    metrics.add_model("fake", None, {"backend": "fake"})
    engine.observers.append(metrics)
    state = ServerState.from_settings(Settings(max_batch_size=4, log_prompts=True), metrics)
    state.engine, state.ready = engine, True
    engine.start()
    with TestClient(build_app(state)) as client:
        yield client, state, backend
    engine.stop()


def test_not_ready_and_draining_are_503_while_health_stays_ok(setup):
    client, state, _ = setup
    state.ready = False
    response = client.post("/v1/completions", json=BODY)
    assert response.status_code == 503 and response.json()["error"]["type"] == "service_unavailable"
    assert client.get("/ready").json() == {"status": "loading"}
    assert client.get("/health").status_code == 200
    state.ready, state.draining = True, True
    assert client.post("/v1/completions", json=BODY).status_code == 503
    assert client.get("/ready").json()["status"] == "draining"


def test_a_model_failure_is_500_and_the_server_keeps_serving(setup):
    client, state, backend = setup
    backend.fail_next = True
    response = client.post("/v1/completions", json=BODY)
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "server_error"
    assert "Traceback" not in response.text
    assert client.post("/v1/completions", json=BODY).status_code == 200
    errors = state.metrics.registry.get_sample_value(
        "tuneloop_request_errors_total", {"model": "fake", "adapter": "none", "kind": "internal"}
    )
    assert errors == 1


def test_a_failure_mid_stream_sends_an_error_event_then_done(setup):
    client, _, backend = setup
    original = backend.forward
    calls = []

    def fail_on_third_call(batch):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return original(batch)

    backend.forward = fail_on_third_call
    with client.stream("POST", "/v1/completions", json=BODY | {"stream": True}) as response:
        events = [line.removeprefix("data: ") for line in response.iter_lines() if line]
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["error"]["type"] == "server_error"
    assert json.loads(events[0])["choices"][0]["text"]


def test_more_choices_than_the_batch_holds_is_400(setup):
    client, _, _ = setup
    response = client.post("/v1/completions", json=BODY | {"n": 5})
    assert response.status_code == 400 and "max_batch_size" in response.json()["error"]["message"]


def test_prompts_are_logged_only_when_asked(setup, caplog):
    client, state, _ = setup
    with caplog.at_level(logging.INFO, logger="tuneloop.serve.access"):
        client.post("/v1/completions", json=BODY)
        state.settings = state.settings.model_copy(update={"log_prompts": False})
        client.post("/v1/completions", json=BODY)
    logged, quiet = [r for r in caplog.records if r.name == "tuneloop.serve.access"][-2:]
    assert logged.prompt == [1, 2, 3] and logged.completion and logged.completion[0]
    assert not hasattr(quiet, "prompt") and not hasattr(quiet, "completion")


def test_openapi_schema_documents_the_routes_and_error_body(setup):
    client, _, _ = setup
    schema = client.get("/openapi.json").json()
    assert {"/v1/chat/completions", "/v1/completions", "/v1/models", "/ready"} <= set(
        schema["paths"]
    )
    responses = schema["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert {"200", "400", "401", "404", "413", "422", "429", "503"} <= set(responses)
    temperature = schema["components"]["schemas"]["ChatCompletionRequest"]["properties"][
        "temperature"
    ]
    assert temperature["maximum"] == 2 and temperature["description"]
    assert client.get("/docs").status_code == 200
