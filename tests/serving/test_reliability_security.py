"""Security guarantees of the server, in-process over the fake model: keys on every route,
per-key rate limits, hostile bodies, paths outside the adapter directory, pickle files, and
no prompt text in logs or metrics."""

from __future__ import annotations

import json
import logging
import re

import pytest
from fastapi.testclient import TestClient

from serving.serve_fakes import FakeBackend, fake_state
from tuneloop.serve.app import build_app
from tuneloop.serve.errors import RateLimited
from tuneloop.serve.rate_limit import RateLimiter
from tuneloop.serve.settings import Settings

API_KEY = "reliability-key-1"
OTHER_KEY = "reliability-key-2"
ADMIN_KEY = "reliability-admin-key-0123"
# Routes anyone may call: liveness, readiness and the API's own description.
OPEN_ROUTES = {"/health", "/ready", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
BODY = {"model": "fake", "prompt": [1, 2, 3], "max_tokens": 4, "temperature": 0}


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def assert_openai_error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error


@pytest.fixture
def served(request):
    """(client, state, backend) of an app with API keys, an admin key and the given settings."""
    overrides = getattr(request, "param", {})
    settings = Settings(
        api_keys=[API_KEY, OTHER_KEY],
        admin_key=ADMIN_KEY,
        metrics_require_key=True,
        max_tokens_limit=64,
        **overrides,
    )
    backend = FakeBackend()
    state = fake_state(settings, backend)
    with TestClient(build_app(state)) as client:
        yield client, state, backend
    state.engine.stop()


def routes_and_methods(app):
    """(method, path) of every route the app answers, including those of included routers."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI lists included routes flat
        routes = [(route.path, route) for route in app.routes]
    else:
        routes = [(c.path, c.original_route) for c in iter_route_contexts(app.routes)]
    for path, route in routes:
        methods = getattr(route, "methods", None) or {"GET"}
        for method in sorted(methods - {"HEAD"}):
            yield method, path


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


# ---- keys on every route ----


def test_every_route_but_health_ready_and_docs_needs_a_key(served):
    """Walks the app's own route table, so a route added later can't slip through open."""
    client, _, _ = served
    checked = []
    for method, path in routes_and_methods(client.app):
        if path in OPEN_ROUTES:
            continue
        response = client.request(method, concrete(path), json=BODY)
        assert_openai_error(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"
        checked.append(path)
    assert {"/v1/chat/completions", "/v1/completions", "/v1/models", "/metrics"} <= set(checked)
    assert any(path.startswith("/admin/") for path in checked)
    for path in OPEN_ROUTES & {path for _, path in routes_and_methods(client.app)}:
        assert client.get(path).status_code == 200, path


def test_admin_routes_take_only_the_admin_key_and_api_routes_only_api_keys(served):
    client, _, _ = served
    for method, path in routes_and_methods(client.app):
        if path.startswith("/admin"):
            response = client.request(method, concrete(path), headers=bearer(API_KEY), json={})
            assert_openai_error(response, 401)
        elif path.startswith("/v1"):
            response = client.request(method, concrete(path), headers=bearer(ADMIN_KEY), json={})
            assert_openai_error(response, 401)
    assert client.get("/admin/adapters", headers=bearer(ADMIN_KEY)).status_code == 200
    assert client.post("/v1/completions", json=BODY, headers=bearer(API_KEY)).status_code == 200


# ---- per-key rate limits ----


@pytest.mark.parametrize("served", [{"rate_limit_rpm": 3}], indirect=True)
def test_rate_limit_is_per_key_with_429_and_retry_after(served):
    client, state, _ = served
    for _ in range(3):
        assert client.post("/v1/completions", json=BODY, headers=bearer(API_KEY)).status_code == 200
    refused = client.post("/v1/completions", json=BODY, headers=bearer(API_KEY))
    error = assert_openai_error(refused, 429)
    assert error["code"] == "rate_limit_exceeded" and "3 requests per minute" in error["message"]
    assert 15 <= int(refused.headers["retry-after"]) <= 21  # one request every 20 s
    # another key has its own budget; a wrong key is refused before it could spend any
    assert client.post("/v1/completions", json=BODY, headers=bearer(OTHER_KEY)).status_code == 200
    for _ in range(5):
        assert_openai_error(client.post("/v1/completions", json=BODY, headers=bearer("no")), 401)
    assert client.post("/v1/completions", json=BODY, headers=bearer(OTHER_KEY)).status_code == 200
    # scrapes are never rate limited
    for _ in range(5):
        assert client.get("/metrics", headers=bearer(API_KEY)).status_code == 200
    overloaded = state.metrics.registry.get_sample_value(
        "tuneloop_request_errors_total",
        {"model": "unknown", "adapter": "unknown", "kind": "overloaded"},
    )
    assert overloaded == 1


def test_token_bucket_refills_over_the_minute_and_forgets_old_clients():
    now = [0.0]
    limiter = RateLimiter(60, clock=lambda: now[0], max_clients=3)
    for _ in range(60):
        limiter.check("key:a")
    with pytest.raises(RateLimited) as refused:
        limiter.check("key:a")
    assert refused.value.headers() == {"Retry-After": "1"}
    now[0] += 0.5
    with pytest.raises(RateLimited):
        limiter.check("key:a")
    now[0] += 0.5  # one second: one request more
    limiter.check("key:a")
    for client in ("address:1", "address:2", "address:3"):
        limiter.check(client)
    assert len(limiter) == 3  # "key:a" was the least recently seen and is forgotten
    limiter.check("key:a")  # ...so it starts with a full bucket again


def test_rate_limit_setting_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("TUNELOOP_RATE_LIMIT_RPM", "120")
    assert Settings().rate_limit_rpm == 120
    assert Settings().model_copy(update={"rate_limit_rpm": 0}).rate_limit_rpm == 0


# ---- hostile bodies: 4xx, and the model never sees them ----

NESTED = b'{"model": "fake", "prompt": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
HOSTILE = {
    "deeply nested JSON": (NESTED, "application/json", 400),
    "nested lists as the prompt": (
        json.dumps({"model": "fake", "prompt": [[[[[[1]]]]]]}).encode(),
        "application/json",
        422,
    ),
    "invalid UTF-8": (b'{"model": "fake", "prompt": "\xff\xfe\xfd"}', "application/json", 400),
    "not JSON": (b"model=fake&prompt=hi", "application/json", 400),
    "form body": (b"model=fake&prompt=hi", "application/x-www-form-urlencoded", 422),
    "plain text": (b"hello", "text/plain", 422),
    "a JSON array": (b"[1, 2, 3]", "application/json", 422),
    "a JSON string": (b'"prompt"', "application/json", 422),
    "null": (b"null", "application/json", 422),
    "empty body": (b"", "application/json", 422),
    "NaN temperature": (
        b'{"model": "fake", "prompt": [1], "temperature": NaN}',
        "application/json",
        422,
    ),
    "huge max_tokens": (
        json.dumps(BODY | {"max_tokens": 10**30}).encode(),
        "application/json",
        400,
    ),
    "huge prompt": (
        json.dumps(BODY | {"prompt": [5] * 100_000}).encode(),
        "application/json",
        400,
    ),
    "huge n": (json.dumps(BODY | {"n": 10**9}).encode(), "application/json", 422),
    "too many prompts": (
        json.dumps(BODY | {"prompt": ["a"] * 10_000}).encode(),
        "application/json",
        422,
    ),
    "too many messages": (
        json.dumps(
            {"model": "fake", "messages": [{"role": "user", "content": "x"}] * 5000}
        ).encode(),
        "application/json",
        422,
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_bodies_are_4xx_without_reaching_the_model(served, case):
    client, _, backend = served
    body, content_type, status = HOSTILE[case]
    path = "/v1/chat/completions" if b"messages" in body else "/v1/completions"
    response = client.post(
        path, content=body, headers=bearer(API_KEY) | {"content-type": content_type}
    )
    assert_openai_error(response, status)
    assert backend.calls == []
    assert client.post("/v1/completions", json=BODY, headers=bearer(API_KEY)).status_code == 200


# ---- nothing a client sends becomes a log line or a label ----


def test_prompt_text_and_unknown_models_stay_out_of_logs_and_metrics(served, caplog):
    client, _, _ = served
    secret = "confidential-words-1234"
    with caplog.at_level(logging.DEBUG):
        client.post(
            "/v1/completions",
            json=BODY | {"prompt": secret, "stop": [secret]},
            headers=bearer(API_KEY),
        )
        client.post("/v1/completions", json=BODY | {"model": secret}, headers=bearer(API_KEY))
        client.post("/v1/completions", json={"model": "fake", "prompt": secret, "n": 99})
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert secret not in logged
    metrics = client.get("/metrics", headers=bearer(API_KEY)).text
    assert secret not in metrics
    assert 'model="unknown"' in metrics
