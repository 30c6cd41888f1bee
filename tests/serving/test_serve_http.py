"""The real server process on a loopback port: OpenAI shapes, errors, streaming, adapters, auth."""

from __future__ import annotations

import json
import re
import shutil
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from serving.serve_helpers import start_server

API_KEY = "test-key-1"
ADMIN_KEY = "admin-key-0123456789"
HEADERS = {"Authorization": f"Bearer {API_KEY}"}
MAX_PROMPT = 200
MAX_TOKENS_LIMIT = 1500
MAX_BODY = 8192

pytestmark = pytest.mark.integration  # a real server process


@pytest.fixture(scope="module")
def server(chatty_model_dir, adapter_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("http-server")
    wrong = tmp / "wrong-base"
    shutil.copytree(adapter_root / "alpha", wrong)
    manifest = json.loads((wrong / "tuneloop_adapter.json").read_text())
    manifest["base"]["num_hidden_layers"] = 30
    (wrong / "tuneloop_adapter.json").write_text(json.dumps(manifest))
    server = start_server(
        [
            "--base",
            str(chatty_model_dir),
            "--served-model-name",
            "chatty",
            "--adapter",
            f"alpha={adapter_root / 'alpha'}",
            f"beta={adapter_root / 'beta'}",
            f"wrong={wrong}",
            "--adapter-dir",
            str(adapter_root),
            "--max-prompt-tokens",
            str(MAX_PROMPT),
            "--max-tokens-limit",
            str(MAX_TOKENS_LIMIT),
            "--max-body-bytes",
            str(MAX_BODY),
        ],
        tmp,
        env={"TUNELOOP_API_KEYS": f"{API_KEY},test-key-2", "TUNELOOP_ADMIN_KEY": ADMIN_KEY},
    )
    yield server
    assert server.stop() == 0


def post(server, path, body, headers=HEADERS, **kwargs):
    return httpx.post(f"{server.url}{path}", json=body, headers=headers, timeout=60, **kwargs)


def chat(server, content="Where is my parcel?", **params):
    body = {"model": "chatty", "messages": [{"role": "user", "content": content}]}
    body.update({"max_tokens": 12, "temperature": 0} | params)
    return post(server, "/v1/chat/completions", body)


def assert_openai_error(response, status, *, code=None, param=None, says=()):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"] and error["type"]
    if code is not None:
        assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    for text in says:
        assert text in error["message"], error["message"]
    return error


def sse_events(response) -> list[str]:
    lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines), lines
    return [line.removeprefix("data: ") for line in lines]


# ---- the happy path ----


def test_chat_completion_has_openai_shape_and_request_id(server):
    response = chat(server, max_tokens=7)
    assert response.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    body = response.json()
    assert body["object"] == "chat.completion" and body["model"] == "chatty"
    (choice,) = body["choices"]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"]
    assert choice["finish_reason"] == "length"
    usage = body["usage"]
    assert usage["completion_tokens"] == 7
    assert usage["total_tokens"] == usage["prompt_tokens"] + 7
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0}, "torch lanes cache no prefix"


def test_client_request_id_is_echoed(server):
    response = httpx.get(f"{server.url}/health", headers={"X-Request-ID": "trace-42"})
    assert response.headers["x-request-id"] == "trace-42"


def test_models_lists_the_base_and_its_adapters(server):
    response = httpx.get(f"{server.url}/v1/models", headers=HEADERS)
    cards = {card["id"]: card for card in response.json()["data"]}
    assert set(cards) == {"chatty", "alpha", "beta"}
    assert cards["alpha"]["parent"] == "chatty" and cards["chatty"]["parent"] is None
    one = httpx.get(f"{server.url}/v1/models/alpha", headers=HEADERS).json()
    assert one == cards["alpha"]
    missing = httpx.get(f"{server.url}/v1/models/gamma", headers=HEADERS)
    assert_openai_error(missing, 404, code="model_not_found")


def test_an_adapter_for_another_base_is_refused_and_the_rest_are_served(server):
    refusals = [line for line in server.log().splitlines() if "refusing adapter wrong" in line]
    assert refusals and "num_hidden_layers=30" in refusals[0]


def test_completions_with_echo_several_prompts_and_choices(server):
    body = {"model": "chatty", "prompt": ["Hello", "Bye"], "max_tokens": 4, "n": 2}
    body |= {"temperature": 0, "echo": True}
    choices = post(server, "/v1/completions", body).json()["choices"]
    assert [c["index"] for c in choices] == [0, 1, 2, 3]
    assert choices[0]["text"].startswith("Hello") and choices[2]["text"].startswith("Bye")
    assert choices[0]["text"] == choices[1]["text"], "greedy choices of one prompt agree"


def test_seeded_sampling_is_reproducible(server):
    params = {"temperature": 1.0, "top_p": 0.9, "seed": 1234, "max_tokens": 10}
    first = chat(server, **params).json()["choices"][0]["message"]["content"]
    again = chat(server, **params).json()["choices"][0]["message"]["content"]
    other = chat(server, **(params | {"seed": 99})).json()["choices"][0]["message"]["content"]
    assert first == again != other


# ---- streaming ----


def test_streaming_chunks_end_with_usage_and_done(server):
    greedy = chat(server, max_tokens=10).json()["choices"][0]["message"]["content"]
    body = {
        "model": "chatty",
        "messages": [{"role": "user", "content": "Where is my parcel?"}],
        "max_tokens": 10,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with httpx.stream(
        "POST", f"{server.url}/v1/chat/completions", json=body, headers=HEADERS, timeout=60
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] == 10
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1])
    assert text == greedy


def test_streaming_without_usage_has_no_usage_chunk(server):
    body = {"model": "chatty", "prompt": "Hi", "max_tokens": 3, "stream": True}
    with httpx.stream(
        "POST", f"{server.url}/v1/completions", json=body, headers=HEADERS, timeout=60
    ) as response:
        events = sse_events(response)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all("usage" not in c and c["object"] == "text_completion" for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_stop_string_across_a_token_boundary(server, smollm2_tokenizer):
    prompt = "Tell me about returns"
    full = chat(server, prompt, max_tokens=30).json()["choices"][0]["message"]["content"]
    ids = smollm2_tokenizer.encode(full, add_special_tokens=False)
    pieces = [smollm2_tokenizer.decode(ids[: i + 1]) for i in range(len(ids))]
    # a stop string made of the end of token 9 and the start of token 10
    cut = len(pieces[9])
    stop = full[cut - 2 : cut + 2]
    assert len(stop) == 4 and stop not in full[: cut - 2]
    body = chat(server, prompt, max_tokens=30, stop=[stop, "never-there"]).json()
    choice = body["choices"][0]
    assert choice["message"]["content"] == full[: full.index(stop)]
    assert choice["finish_reason"] == "stop"
    streamed = post(
        server,
        "/v1/chat/completions",
        {
            "model": "chatty",
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": 30,
            "temperature": 0,
            "stop": stop,
            "stream": True,
        },
    )
    chunks = [json.loads(e) for e in sse_events(streamed)[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == full[: full.index(stop)]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


# ---- adapters in one batch ----


def test_mixed_adapter_batches_equal_each_adapter_alone(server):
    cases = [(m, p) for m in ("chatty", "alpha", "beta") for p in ("refund please", "hello")]

    def run(case):
        model, prompt = case
        body = {"model": model, "messages": [{"role": "user", "content": prompt}]}
        body |= {"max_tokens": 24, "temperature": 0}
        return post(server, "/v1/chat/completions", body).json()["choices"][0]["message"]["content"]

    alone = [run(case) for case in cases]
    with ThreadPoolExecutor(len(cases)) as pool:
        together = list(pool.map(run, cases))
    assert together == alone
    assert len(set(alone)) == len(alone), "adapters and prompts must give different answers"
    metrics = httpx.get(f"{server.url}/metrics").text
    single = _sample(metrics, 'tuneloop_batch_size_bucket{le="1.0",model="chatty"}')
    total = _sample(metrics, 'tuneloop_batch_size_count{model="chatty"}')
    assert total > single, "no decode step ever ran more than one sequence"


# ---- errors, each with OpenAI's body ----


def test_missing_or_wrong_api_key_is_401(server):
    error = assert_openai_error(chat_without_key(server, None), 401, code="invalid_api_key")
    assert "Authorization: Bearer" in error["message"]
    assert_openai_error(chat_without_key(server, "Bearer wrong-key"), 401, code="invalid_api_key")
    assert chat_without_key(server, "Bearer test-key-2").status_code == 200
    assert httpx.get(f"{server.url}/health").status_code == 200
    assert httpx.get(f"{server.url}/ready").status_code == 200


def chat_without_key(server, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    body = {"model": "chatty", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    return post(server, "/v1/chat/completions", body, headers=headers)


def test_unknown_model_and_route_are_404(server):
    response = chat(server, model="no-such-model")
    assert_openai_error(response, 404, code="model_not_found", param="model", says=["chatty"])
    assert_openai_error(httpx.get(f"{server.url}/v1/nothing", headers=HEADERS), 404)


def test_schema_violations_are_422_naming_field_and_limit(server):
    error = assert_openai_error(chat(server, temperature=5), 422, param="temperature")
    assert "less than or equal to 2" in error["message"]
    error = assert_openai_error(chat(server, stop=["a", "b", "c", "d", "e"]), 422, param="stop")
    assert "at most 4" in error["message"]
    assert_openai_error(chat(server, n=0), 422, param="n")
    response = post(server, "/v1/chat/completions", {"model": "chatty"})
    assert_openai_error(response, 422, param="messages", says=["Field required"])


def test_limits_are_400_with_the_limit_in_the_message(server):
    long_prompt = "word " * (MAX_PROMPT + 10)
    assert_openai_error(
        chat(server, long_prompt),
        400,
        code="context_length_exceeded",
        says=[str(MAX_PROMPT), "max_prompt_tokens"],
    )
    assert_openai_error(
        chat(server, max_tokens=MAX_TOKENS_LIMIT + 1),
        400,
        param="max_tokens",
        says=[str(MAX_TOKENS_LIMIT)],
    )
    assert_openai_error(chat(server, logprobs=True), 400, code="unsupported_parameter")
    bad_json = httpx.post(
        f"{server.url}/v1/chat/completions",
        content=b"{not json",
        headers=HEADERS | {"content-type": "application/json"},
    )
    assert_openai_error(bad_json, 400, says=["not valid JSON"])


def test_body_over_the_limit_is_413(server):
    huge = "x" * (MAX_BODY + 1)
    assert_openai_error(chat(server, huge), 413, says=[str(MAX_BODY), "max_body_bytes"])

    def chunked():  # no Content-Length: the server must count
        yield b'{"model": "chatty", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}]}'

    response = httpx.post(
        f"{server.url}/v1/chat/completions",
        content=chunked(),
        headers=HEADERS | {"content-type": "application/json"},
    )
    assert_openai_error(response, 413)


# ---- admin ----


def test_admin_loads_and_unloads_adapters_from_the_adapter_dir(server):
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    url = f"{server.url}/admin/adapters"
    body = {"name": "beta-copy", "path": "beta"}
    assert_openai_error(httpx.post(url, json=body, headers=HEADERS), 401)
    for path in ("../beta", "/etc", "beta/../../x"):
        response = httpx.post(url, json={"name": "x", "path": path}, headers=admin)
        assert_openai_error(response, 400, param="path")
    response = httpx.post(url, json=body, headers=admin, timeout=60)
    assert response.status_code == 201, response.text
    beta = chat(server, model="beta").json()["choices"][0]["message"]["content"]
    copy = chat(server, model="beta-copy").json()["choices"][0]["message"]["content"]
    assert copy == beta
    assert_openai_error(httpx.post(url, json=body, headers=admin), 409)
    assert httpx.delete(f"{url}/beta-copy", headers=admin, timeout=60).status_code == 200
    assert_openai_error(chat(server, model="beta-copy"), 404, code="model_not_found")


# ---- metrics and logs ----

DESIGN_METRICS = [
    "tuneloop_request_duration_seconds",
    "tuneloop_time_to_first_token_seconds",
    "tuneloop_inter_token_latency_seconds",
    "tuneloop_queue_wait_seconds",
    "tuneloop_requests_total",
    "tuneloop_request_errors_total",
    "tuneloop_prompt_tokens_total",
    "tuneloop_generated_tokens_total",
    "tuneloop_requests_running",
    "tuneloop_requests_waiting",
    "tuneloop_batch_size",
    "tuneloop_drift_score",
    "tuneloop_model_info",
]


def test_metrics_export_the_design_names_for_every_adapter(server):
    chat(server, model="no-such-model")
    text = httpx.get(f"{server.url}/metrics").text
    for name in DESIGN_METRICS:
        assert f"# TYPE {name.removesuffix('_total').removesuffix('_info')}" in text, name
    for adapter in ("alpha", "beta"):
        assert f'tuneloop_generated_tokens_total{{adapter="{adapter}",model="chatty"}}' in text
    assert 'model_info{adapter="alpha",backend="torch"' in text
    assert "no-such-model" not in text
    assert _sample(text, 'tuneloop_requests_total{adapter="unknown",model="unknown",status="404"}')
    assert "process_resident_memory_bytes" in text


def test_logs_are_json_with_request_ids_and_no_prompt_text(server):
    secret = "my-secret-prompt-words"
    response = chat(server, secret, max_tokens=2)
    request_id = response.headers["x-request-id"]
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("request_id") == request_id]
    assert access and access[-1]["path"] == "/v1/chat/completions"
    assert access[-1]["completion_tokens"] == 2
    assert secret not in server.log()


def _sample(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{series} not in the metrics")


# ---- the official client, unchanged ----


def test_official_openai_client_works_unchanged(server):
    import openai

    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0)
    assert {"chatty", "alpha", "beta"} <= {m.id for m in client.models.list()}
    assert client.models.retrieve("beta").id == "beta"
    messages = [{"role": "user", "content": "Where is my parcel?"}]
    answer = client.chat.completions.create(
        model="alpha", messages=messages, max_tokens=8, temperature=0
    )
    assert answer.choices[0].finish_reason == "length" and answer.usage.completion_tokens == 8
    stream = client.chat.completions.create(
        model="alpha",
        messages=messages,
        max_tokens=8,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == answer.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == 8
    completion = client.completions.create(model="beta", prompt="Hello", max_tokens=4)
    assert completion.choices[0].text and completion.usage.completion_tokens == 4
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=messages)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0).models.list()
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="chatty", messages=messages, max_tokens=10**6)
    assert str(MAX_TOKENS_LIMIT) in exc.value.message
