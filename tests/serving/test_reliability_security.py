"""Security guarantees of the server, in-process over the fake model: keys on every route,
per-key rate limits, hostile bodies, paths outside the adapter directory, pickle files, and
no prompt text in logs or metrics."""

from __future__ import annotations

import json
import logging
import pickle
import re
import shutil

import pytest
from fastapi.testclient import TestClient

from serving.serve_fakes import FakeBackend, fake_state
from tuneloop.serve.adapter_folder import inside
from tuneloop.serve.app import build_app
from tuneloop.serve.errors import AdapterRefused, RateLimited
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


# ---- adapters only from the adapter directory, never pickle ----


@pytest.fixture
def adapter_dir(tmp_path, adapter_root):
    """An adapter directory with one good adapter, and secrets outside it."""
    root = tmp_path / "adapters"
    shutil.copytree(adapter_root / "alpha", root / "alpha")
    outside = tmp_path / "outside"
    shutil.copytree(adapter_root / "beta", outside / "beta")
    (root / "linked-folder").symlink_to(outside / "beta", target_is_directory=True)
    sneaky = root / "sneaky"
    sneaky.mkdir()
    for item in (adapter_root / "alpha").iterdir():
        if item.name != "adapter_model.safetensors":
            shutil.copy(item, sneaky / item.name)
    (sneaky / "adapter_model.safetensors").symlink_to(
        outside / "beta" / "adapter_model.safetensors"
    )
    return root


@pytest.mark.parametrize(
    "path, says",
    [
        ("../outside/beta", "leaves the adapter directory"),
        ("alpha/../../outside/beta", "leaves the adapter directory"),
        ("/etc", "must be relative"),
        ("", "must be relative"),
        ("linked-folder", "leaves the adapter directory"),
        ("sneaky", "adapter_model.safetensors links outside"),
    ],
)
def test_adapter_paths_that_leave_the_adapter_directory_are_refused(adapter_dir, path, says):
    with pytest.raises(AdapterRefused, match=re.escape(says)):
        inside(adapter_dir, path)


def test_the_admin_route_refuses_them_with_400(adapter_dir):
    settings = Settings(admin_key=ADMIN_KEY, adapter_dir=adapter_dir)
    state = fake_state(settings)
    with TestClient(build_app(state)) as client:
        for path in ("../outside/beta", "linked-folder", "sneaky", "/etc/passwd"):
            response = client.post(
                "/admin/adapters", json={"name": "x", "path": path}, headers=bearer(ADMIN_KEY)
            )
            assert assert_openai_error(response, 400)["param"] == "path"
    state.engine.stop()
    assert inside(adapter_dir, "alpha") == (adapter_dir / "alpha").resolve()


def write_evil_pickle(path, marker):
    """A pickle that creates `marker` when it is unpickled."""

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path.write_bytes(pickle.dumps(Evil()))


@pytest.fixture
def no_torch_load(monkeypatch):
    import torch

    def refuse(*args, **kwargs):
        raise AssertionError("torch.load was called on a served file")

    monkeypatch.setattr(torch, "load", refuse)


def test_pickle_files_are_never_unpickled(tmp_path, chatty_model_dir, adapter_root, no_torch_load):
    from tuneloop.base_model import resolve_base
    from tuneloop.errors import ModelLoadError
    from tuneloop.serve.backends.torch_backend import TorchBackend
    from tuneloop.serve.lanes import ModelSpec

    marker = tmp_path / "pwned"
    # an adapter with only pickle weights is refused, naming the file
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    shutil.copy(adapter_root / "alpha" / "adapter_config.json", pickled)
    write_evil_pickle(pickled / "adapter_model.bin", marker)
    backend = TorchBackend.load(ModelSpec("chatty", "torch", chatty_model_dir, threads=1))
    with pytest.raises(AdapterRefused, match="pickle files are never loaded"):
        backend.load_adapter("pickled", pickled)
    # next to safetensors weights, a pickle file is ignored
    both = tmp_path / "both"
    shutil.copytree(adapter_root / "alpha", both)
    write_evil_pickle(both / "adapter_model.bin", marker)
    backend.load_adapter("both", both)
    assert backend.adapters == ["both"]
    # a base model folder with only pickle weights is refused
    base = tmp_path / "pickled-base"
    base.mkdir()
    shutil.copy(chatty_model_dir / "config.json", base)
    write_evil_pickle(base / "pytorch_model.bin", marker)
    with pytest.raises(ModelLoadError, match="pickle files are never loaded"):
        resolve_base(str(base))
    assert not marker.exists()
