"""The server under load, as a real process over the fake model (each step sleeps a fixed time,
so a request's cost is known): overload with bounded memory, many disconnects at once, and
SIGTERM while requests run. Run with `-s` to see the figures the README quotes."""

from __future__ import annotations

import json
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from serving.serve_helpers import ServerProcess, start_fake_server, wait_for

pytestmark = pytest.mark.integration  # real server processes

STEP_S = 0.01
BATCH, WAITING = 4, 4
CAPACITY = BATCH + WAITING  # requests the server holds at once
TOKENS = 16
BODY = {"model": "fake", "prompt": [1, 2, 3], "max_tokens": TOKENS, "temperature": 0}


@pytest.fixture
def fake_server(tmp_path):
    started: list[ServerProcess] = []

    def start(step_s: float = STEP_S, **settings) -> ServerProcess:
        env = {f"TUNELOOP_{k.upper()}": str(v) for k, v in settings.items()}
        server = start_fake_server(tmp_path, step_s, {"TUNELOOP_LOG_LEVEL": "warning", **env})
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def metric(server: ServerProcess, series: str) -> float:
    for line in httpx.get(f"{server.url}/metrics").text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


class Load:
    """`clients` threads sending BODY back to back; counts statuses and checks each answer."""

    def __init__(self, server: ServerProcess, clients: int) -> None:
        self.server, self.clients = server, clients
        self.statuses: dict[int, int] = {}
        self.problems: list[str] = []
        self._lock = threading.Lock()

    def run(self, requests: int) -> None:
        per_client = [
            requests // self.clients + (i < requests % self.clients) for i in range(self.clients)
        ]
        with ThreadPoolExecutor(self.clients) as pool:
            list(pool.map(self._client, per_client))

    def _client(self, count: int) -> None:
        with httpx.Client(base_url=self.server.url, timeout=60) as client:
            for _ in range(count):
                self._check(client.post("/v1/completions", json=BODY))

    def _check(self, response) -> None:
        problem = None
        if response.status_code == 200:
            if response.json()["usage"]["completion_tokens"] != TOKENS:
                problem = f"short answer: {response.text}"
        elif response.status_code == 429:
            if int(response.headers.get("retry-after", 0)) < 1 or "error" not in response.json():
                problem = f"429 without Retry-After or error body: {response.headers}"
        else:
            problem = f"{response.status_code}: {response.text}"
        with self._lock:
            self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
            if problem:
                self.problems.append(problem)


@pytest.mark.slow
def test_overload_at_4x_capacity_refuses_the_excess_and_memory_stays_flat(fake_server):
    server = fake_server(max_batch_size=BATCH, max_waiting=WAITING)
    load = Load(server, clients=4 * CAPACITY)
    started = time.monotonic()
    load.run(200)
    rss_200 = rss_mib(server.process.pid)
    load.run(1800)
    rss_2000 = rss_mib(server.process.pid)
    seconds = time.monotonic() - started
    ok, refused = load.statuses.get(200, 0), load.statuses.get(429, 0)
    print(
        f"\noverload: {4 * CAPACITY} clients against room for {CAPACITY} requests, 2000 requests"
        f" in {seconds:.1f} s: {ok} answered, {refused} refused with 429; resident memory"
        f" {rss_200:.1f} MiB after 200, {rss_2000:.1f} MiB after 2000"
        f" ({rss_2000 - rss_200:+.1f} MiB)"
    )
    assert not load.problems, load.problems[:5]
    assert set(load.statuses) == {200, 429}, load.statuses
    assert ok + refused == 2000 and ok >= CAPACITY and refused >= 100
    assert rss_2000 - rss_200 < 16, "resident memory grew under steady load"
    assert server.process.poll() is None
    ok_counted = metric(server, 'tuneloop_requests_total{adapter="none",model="fake",status="200"}')
    assert ok_counted == ok
    overloaded = metric(
        server, 'tuneloop_request_errors_total{adapter="unknown",kind="overloaded",model="unknown"}'
    ) + metric(
        server, 'tuneloop_request_errors_total{adapter="none",kind="overloaded",model="fake"}'
    )
    assert overloaded == refused
    assert metric(server, 'tuneloop_requests_waiting{model="fake"}') == 0


def open_stream(server: ServerProcess, max_tokens: int):
    client = httpx.Client(timeout=60)
    body = BODY | {"max_tokens": max_tokens, "stream": True}
    response = client.send(
        client.build_request("POST", f"{server.url}/v1/completions", json=body), stream=True
    )
    assert response.status_code == 200
    lines = response.iter_lines()
    assert next(line for line in lines if line).startswith("data: {")
    return client, response, lines


def finish_stream(lines) -> list[dict | str]:
    events = [line.removeprefix("data: ") for line in lines if line]
    return [e if e == "[DONE]" else json.loads(e) for e in events]


def test_many_clients_leaving_at_once_free_their_slots_and_others_stream_on(fake_server):
    server = fake_server(step_s=0.02, max_batch_size=16)
    long = 300  # about 6 s of steps
    streams = [open_stream(server, long) for _ in range(12)]
    leaving, staying = streams[:8], streams[8:]
    running = 'tuneloop_requests_running{model="fake"}'
    wait_for(lambda: metric(server, running) == 12, what="all twelve streams to run")
    for client, response, _ in leaving:  # all at once
        response.close()
        client.close()
    wait_for(lambda: metric(server, running) == 4, what="the slots of the leavers to be freed")
    cancelled = 'tuneloop_requests_total{adapter="none",model="fake",status="499"}'
    wait_for(lambda: metric(server, cancelled) == 8, what="eight cancelled requests")
    kind = 'tuneloop_request_errors_total{adapter="none",kind="cancelled",model="fake"}'
    assert metric(server, kind) == 8
    for client, response, lines in staying:
        events = finish_stream(lines)
        response.close()
        client.close()
        assert events[-1] == "[DONE]"
        text = "".join(e["choices"][0]["text"] for e in events[:-1] if e["choices"])
        assert events[-2]["choices"][0]["finish_reason"] == "length"
        assert len(text) >= long - 1  # every token arrived (one character each)
    wait_for(lambda: metric(server, running) == 0, what="the batch to empty")
    generated = metric(server, 'tuneloop_generated_tokens_total{adapter="none",model="fake"}')
    assert generated < 4 * long + 8 * long / 2  # the leavers stopped early


def test_sigterm_under_load_finishes_running_requests_refuses_new_ones_and_exits_0(fake_server):
    server = fake_server(step_s=0.02, max_batch_size=8, shutdown_grace_s=60)
    streams = [open_stream(server, 100) for _ in range(4)]
    results: list[httpx.Response] = []

    def plain() -> None:
        results.append(
            httpx.post(f"{server.url}/v1/completions", json=BODY | {"max_tokens": 100}, timeout=60)
        )

    workers = [threading.Thread(target=plain) for _ in range(4)]
    for worker in workers:
        worker.start()
    wait_for(
        lambda: metric(server, 'tuneloop_requests_running{model="fake"}') == 8, what="8 running"
    )
    server.process.send_signal(signal.SIGTERM)
    wait_for(lambda: httpx.get(f"{server.url}/ready").status_code == 503, what="draining")
    refused = httpx.post(f"{server.url}/v1/completions", json=BODY)
    assert refused.status_code == 503 and refused.json()["error"]["type"] == "service_unavailable"
    for client, response, lines in streams:
        events = finish_stream(lines)
        response.close()
        client.close()
        assert events[-1] == "[DONE]" and events[-2]["choices"][0]["finish_reason"] == "length"
    for worker in workers:
        worker.join(timeout=60)
    assert [r.status_code for r in results] == [200] * 4
    assert all(r.json()["usage"]["completion_tokens"] == 100 for r in results)
    assert server.process.wait(timeout=60) == 0
