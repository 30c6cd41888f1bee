"""Backpressure and life cycle on a real server: a full queue, disconnects, deadlines, SIGTERM."""

from __future__ import annotations

import json
import signal
import threading
import time

import httpx
import pytest

from serving.serve_helpers import wait_for

# One sequence at a time and one waiting: the smallest server where a queue can fill up.
TIGHT = ["--max-batch-size", "1", "--max-waiting", "1"]
LONG = 1800  # tokens: the chatty model never stops early, so this runs for seconds

pytestmark = pytest.mark.integration  # a real server process


def chat_body(max_tokens: int, stream: bool = False) -> dict:
    return {
        "model": "chatty",
        "messages": [{"role": "user", "content": "tell me everything"}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": stream,
    }


def metric(server, series: str) -> float:
    for line in httpx.get(f"{server.url}/metrics").text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{series} not exported")


def start_stream(server, max_tokens: int = LONG):
    """Open a streaming request and read until its first token arrived."""
    client = httpx.Client(timeout=60)
    request = client.build_request(
        "POST", f"{server.url}/v1/chat/completions", json=chat_body(max_tokens, stream=True)
    )
    response = client.send(request, stream=True)
    lines = response.iter_lines()
    first = next(line for line in lines if line)
    assert first.startswith("data: {")
    return client, response, lines


@pytest.fixture
def tight_server(serve_process, chatty_model_dir):
    return serve_process(["--base", str(chatty_model_dir), "--served-model-name", "chatty", *TIGHT])


def test_disconnect_frees_the_slot_and_a_full_queue_gives_429(tight_server):
    server = tight_server
    running = 'tuneloop_requests_running{model="chatty"}'
    client, response, _ = start_stream(server)
    assert metric(server, running) == 1

    # the one waiting place fills up behind the running stream...
    waiting_result = {}
    waiter = threading.Thread(
        target=lambda: waiting_result.update(
            response=httpx.post(f"{server.url}/v1/chat/completions", json=chat_body(5), timeout=60)
        )
    )
    waiter.start()
    wait_for(lambda: metric(server, 'tuneloop_requests_waiting{model="chatty"}') == 1)

    # ...so the next request is refused with 429 and a Retry-After
    refused = httpx.post(f"{server.url}/v1/chat/completions", json=chat_body(5))
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    error = refused.json()["error"]
    assert error["code"] == "queue_full" and "retry after" in error["message"]

    # the streaming client goes away: its sequence ends and the waiting request gets the slot
    response.close()
    client.close()
    waiter.join(timeout=30)
    assert waiting_result["response"].status_code == 200
    wait_for(lambda: metric(server, running) == 0, what="the running gauge to drop")
    cancelled = 'tuneloop_requests_total{adapter="none",model="chatty",status="499"}'
    wait_for(lambda: metric(server, cancelled) == 1, what="the cancelled request to be counted")
    assert metric(server, 'tuneloop_generated_tokens_total{adapter="none",model="chatty"}') < LONG

    # a client of a non-streaming request that gives up is noticed too
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{server.url}/v1/chat/completions", json=chat_body(LONG), timeout=1.5)
    wait_for(lambda: metric(server, cancelled) == 2, what="the abandoned request to be cancelled")
    assert metric(server, running) == 0


def test_deadline_ends_the_request_with_504_and_frees_the_slot(serve_process, chatty_model_dir):
    server = serve_process(
        ["--base", str(chatty_model_dir), "--served-model-name", "chatty", *TIGHT]
        + ["--request-timeout-s", "2"]
    )
    started = time.monotonic()
    response = httpx.post(f"{server.url}/v1/chat/completions", json=chat_body(LONG), timeout=60)
    if response.status_code == 200:
        pytest.skip("this machine generated 1800 tokens within the 2 s deadline")
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "timeout"
    assert "2 s" in response.json()["error"]["message"]
    assert time.monotonic() - started < 30
    ok = httpx.post(f"{server.url}/v1/chat/completions", json=chat_body(3), timeout=60)
    assert ok.status_code == 200


def test_sigterm_drains_running_requests_refuses_new_ones_and_exits_0(
    serve_process, chatty_model_dir
):
    server = serve_process(
        ["--base", str(chatty_model_dir), "--served-model-name", "chatty"]
        + ["--shutdown-grace-s", "60"]
    )
    client, response, lines = start_stream(server, max_tokens=600)
    server.process.send_signal(signal.SIGTERM)
    wait_for(
        lambda: httpx.get(f"{server.url}/ready").status_code == 503, what="/ready to say draining"
    )
    assert httpx.get(f"{server.url}/ready").json()["status"] == "draining"
    refused = httpx.post(f"{server.url}/v1/chat/completions", json=chat_body(3))
    assert refused.status_code == 503
    assert refused.json()["error"]["type"] == "service_unavailable"
    rest = [line.removeprefix("data: ") for line in lines if line]
    response.close()
    client.close()
    assert rest[-1] == "[DONE]"
    assert json.loads(rest[-2])["choices"][0]["finish_reason"] == "length"
    assert server.process.wait(timeout=60) == 0


def test_requests_still_running_when_the_grace_period_ends_are_ended_cleanly(
    serve_process, chatty_model_dir
):
    server = serve_process(
        ["--base", str(chatty_model_dir), "--served-model-name", "chatty"]
        + ["--shutdown-grace-s", "1"]
    )
    client, response, lines = start_stream(server, max_tokens=LONG)
    server.process.send_signal(signal.SIGTERM)
    rest = [line.removeprefix("data: ") for line in lines if line]
    response.close()
    client.close()
    assert rest[-1] == "[DONE]"
    error = json.loads(rest[-2])["error"]
    assert error["type"] == "service_unavailable" and "shut down" in error["message"]
    assert server.process.wait(timeout=60) == 0


def test_a_model_that_fails_to_load_makes_the_server_exit_1(tmp_path):
    import subprocess
    import sys

    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "llama", "architectures": ["x"]}')
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    result = subprocess.run(
        [sys.executable, "-m", "tuneloop", "serve", "--base", str(broken), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "loading the models failed" in result.stderr


def test_a_public_bind_without_api_keys_is_refused(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "tuneloop", "serve", "--host", "0.0.0.0", "--port", "9"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without API keys" in result.stderr
