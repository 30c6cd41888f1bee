"""Faults the server survives, in-process: broken model files, and requests refused midway."""

from __future__ import annotations

import json
import logging
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from serving.serve_fakes import fake_state
from tuneloop.serve.app import build_app
from tuneloop.serve.loading import load_engine
from tuneloop.serve.metrics import Metrics
from tuneloop.serve.settings import Settings
from tuneloop.serve.state import ServerState

NAME = "support-triage"


def onnx_variant(root, variant: str, files: dict) -> None:
    """A variant folder that passed its gate but whose model.onnx is gone."""
    folder = root / variant
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"max_position_embeddings": 512}')
    artifact = {
        "format": 1,
        "name": NAME,
        "variant": variant,
        "backend": "onnx",
        "precision": "fp32",
        "gate": {"status": "passed", "failures": []},
        "source": {"base": "chatty"},
        "files": files,
    }
    (folder / "tuneloop_artifact.json").write_text(json.dumps(artifact))


@pytest.fixture
def broken_setup(tmp_path, chatty_model_dir, adapter_root):
    corrupt = tmp_path / "corrupt"
    shutil.copytree(adapter_root / "alpha", corrupt)
    weights = corrupt / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])  # cut short, as by a full disk or a bad copy
    wrong = tmp_path / "wrong-base"
    shutil.copytree(adapter_root / "beta", wrong)
    manifest = json.loads((wrong / "tuneloop_adapter.json").read_text())
    manifest["base"]["hidden_size"] = 4096
    (wrong / "tuneloop_adapter.json").write_text(json.dumps(manifest))
    optimized = tmp_path / "optimized"
    onnx_variant(optimized, "onnx-int8", {"model.onnx": "0" * 64})  # recorded, then deleted
    onnx_variant(optimized, "onnx-fp32", {})  # nothing recorded: found missing at load time
    (optimized / "summary.json").write_text(json.dumps({"recommended": "onnx-int8"}))
    settings = Settings(
        base=str(chatty_model_dir),
        served_model_name="chatty",
        adapter=[f"alpha={adapter_root / 'alpha'}", f"corrupt={corrupt}", f"wrong={wrong}"],
        model_dir=optimized,
        threads=1,
    )
    metrics = Metrics(CollectorRegistry())
    engine = load_engine(settings, metrics)
    state = ServerState.from_settings(settings, metrics)
    state.engine, state.ready = engine, True
    with TestClient(build_app(state)) as client:
        yield client
    engine.stop()


def test_broken_models_are_reported_not_loaded_and_the_others_served(broken_setup, caplog):
    client = broken_setup
    ready = client.get("/ready")
    assert ready.status_code == 200  # the healthy models still serve: stay in the load balancer
    body = ready.json()
    assert body["status"] == "degraded"
    assert set(body["models"]) == {"chatty", "alpha"}
    reasons = body["not_loaded"]
    assert set(reasons) == {"corrupt", "wrong", NAME, f"{NAME}:onnx-int8", f"{NAME}:onnx-fp32"}
    assert "hidden_size" in reasons["wrong"]
    assert "does not fit" in reasons["corrupt"] or "corrupt" in reasons["corrupt"]
    assert reasons[f"{NAME}:onnx-int8"] == "model.onnx is missing"
    assert "model.onnx" in reasons[f"{NAME}:onnx-fp32"] or "onnx" in reasons[f"{NAME}:onnx-fp32"]
    for model in reasons:
        response = client.post(
            "/v1/completions", json={"model": model, "prompt": "Hello", "max_tokens": 2}
        )
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert error["code"] == "model_not_loaded" and reasons[model] in error["message"]
    for model in ("chatty", "alpha"):
        response = client.post(
            "/v1/completions", json={"model": model, "prompt": "Hello", "max_tokens": 2}
        )
        assert response.status_code == 200, response.text
    listed = {m["id"] for m in client.get("/v1/models").json()["data"]}
    assert listed == {"chatty", "alpha"}


def test_each_refusal_has_one_clear_log_line(tmp_path, chatty_model_dir, adapter_root, caplog):
    corrupt = tmp_path / "corrupt"
    shutil.copytree(adapter_root / "alpha", corrupt)
    (corrupt / "adapter_model.safetensors").write_bytes(b"\x00" * 64)
    settings = Settings(
        base=str(chatty_model_dir), adapter=[f"corrupt={corrupt}"], threads=1, served_model_name="c"
    )
    with caplog.at_level(logging.ERROR, logger="tuneloop.serve.loading"):
        engine = load_engine(settings, Metrics(CollectorRegistry()))
    engine.stop()
    (line,) = [r.getMessage() for r in caplog.records if "corrupt" in r.getMessage()]
    assert line.startswith("refusing adapter corrupt: ") and str(corrupt) in line
    assert "\n" not in line


def test_when_nothing_loads_the_error_names_every_failure(tmp_path):
    optimized = tmp_path / "optimized"
    onnx_variant(optimized, "onnx-fp32", {})
    from tuneloop.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match=rf"no model could be loaded \({NAME}:onnx-fp32: "):
        load_engine(Settings(model_dir=optimized), Metrics(CollectorRegistry()))


def test_a_request_refused_midway_leaves_none_of_its_prompts_running():
    # two places (a free batch row and the queue) for a four-prompt request: it is refused,
    # and the two prompts already queued are cancelled rather than generated for nobody
    state = fake_state(Settings(max_batch_size=1, max_waiting=1))
    with TestClient(build_app(state)) as client:
        body = {"model": "fake", "prompt": [[1, 2], [3, 4], [5, 6], [7, 8]], "max_tokens": 2000}
        response = client.post("/v1/completions", json=body)
        assert response.status_code == 429 and response.headers["retry-after"]
        lane = state.engine.lanes[0]
        deadline = time.monotonic() + 30
        while lane.scheduler.has_work() and time.monotonic() < deadline:
            time.sleep(0.02)
        generated = state.metrics.registry.get_sample_value(
            "tuneloop_generated_tokens_total", {"model": "fake", "adapter": "none"}
        )
        assert generated < 100  # not 2 x 2000
        assert client.post("/v1/completions", json=body | {"prompt": [1]}).status_code == 200
    state.engine.stop()


def test_a_tiny_temperature_is_greedy_instead_of_failing_the_whole_batch():
    from tuneloop.serve.sampling import RowSampling, make_generator, sample

    logits = torch.tensor([[1e4, -1e4, 0.0], [0.0, 50.0, -50.0]])
    rows = [RowSampling(t, 1.0, make_generator(0)) for t in (1e-300, 1e-4)]
    assert sample(logits, rows) == [0, 1]
    state = fake_state(Settings(max_batch_size=4))
    with TestClient(build_app(state)) as client:
        bodies = [
            {"model": "fake", "prompt": [1, 2], "max_tokens": 30, "temperature": t}
            for t in (5e-324, 1e-38, 0.7)
        ]
        with ThreadPoolExecutor(3) as pool:
            responses = list(pool.map(lambda b: client.post("/v1/completions", json=b), bodies))
    state.engine.stop()
    assert [r.status_code for r in responses] == [200, 200, 200]
    greedy = [r.json()["choices"][0]["text"] for r in responses[:2]]
    assert greedy[0] == greedy[1]


def test_a_tiny_top_p_keeps_the_most_likely_token():
    from tuneloop.serve.sampling import RowSampling, make_generator, sample

    logits = torch.tensor([[0.0, 3.0, 1.0]])
    assert sample(logits, [RowSampling(1.0, 5e-324, make_generator(0))]) == [1]


@pytest.mark.timeout(60)
def test_a_failure_while_sampling_the_first_token_ends_the_request(monkeypatch):
    """A job between prefill and the running batch must not be lost when the step fails."""
    from tuneloop.serve import scheduler

    real_sample, calls = scheduler.sample, []

    def fail_once(*args):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("simulated sampling failure")
        return real_sample(*args)

    monkeypatch.setattr(scheduler, "sample", fail_once)
    state = fake_state(Settings())
    with TestClient(build_app(state)) as client:
        body = {"model": "fake", "prompt": [1, 2], "max_tokens": 5}
        failed = client.post("/v1/completions", json=body)
        assert failed.status_code == 500 and failed.json()["error"]["type"] == "server_error"
        assert client.post("/v1/completions", json=body).status_code == 200
    state.engine.stop()
