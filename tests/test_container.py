"""The server image: deploy/Dockerfile built with podman, run as a container with no network.

Marked `container`, which the default run deselects: `make test-container` (or
`pytest -m container -s`, -s to watch the build) builds the image once for the module, starts it
with an API key and `--network none`, and talks to the server from inside the container, so
nothing it needs may come from outside: the embedded model must have been converted at build
time. The tests run in file order against one container; the last one stops it with SIGTERM.
TUNELOOP_TEST_IMAGE=IMAGE tests that image instead of building one.

The last test runs deploy/compose.yaml's server and Prometheus with podman-compose (Prometheus
built from Debian's package on the same local base) and asks Prometheus for the server's metrics.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import REPO

from tuneloop.ports import free_port

# slow as well: `pytest -m "not integration and not slow"` (make test-fast) replaces the
# default "not container" selection, and a cold build takes minutes.
pytestmark = [pytest.mark.container, pytest.mark.slow]

IMAGE = "localhost/tuneloop:cpu"
PROMETHEUS_IMAGE = "localhost/tuneloop-prometheus:bookworm"
MODEL = "smollm2-135m-instruct"
SERVER_UID = 10001
READY_TIMEOUT_S = 180

# Run inside the container with its own Python: METHOD PATH API_KEY BODY -> {"status", "body"},
# status 0 when nothing answers yet.
HTTP_CLIENT = """
import json, sys, urllib.error, urllib.request
method, path, key, body = sys.argv[1:]
headers = {"Content-Type": "application/json"}
if key:
    headers["Authorization"] = "Bearer " + key
request = urllib.request.Request(
    "http://127.0.0.1:8000" + path, data=body.encode() or None, headers=headers, method=method
)
try:
    with urllib.request.urlopen(request, timeout=120) as response:
        status, text = response.status, response.read().decode()
except urllib.error.HTTPError as error:
    status, text = error.code, error.read().decode()
except urllib.error.URLError as error:
    status, text = 0, str(error.reason)
print(json.dumps({"status": status, "body": text}))
"""


def _load_build_image():
    spec = importlib.util.spec_from_file_location("build_image", REPO / "deploy" / "build_image.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_image = _load_build_image()


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    command = ["podman", *build_image.podman_options(), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr}")
    return result


@dataclass
class Container:
    name: str
    api_key: str

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def fail(self, message: str) -> None:
        pytest.fail(f"{message}\n--- logs of container {self.name} ---\n{self.logs()}")

    def http(self, method: str, path: str, body: dict | None = None, key: str | None = None):
        """(status, body text) of a request made from inside the container."""
        key = self.api_key if key is None else key
        payload = json.dumps(body) if body is not None else ""
        result = podman(
            "exec", self.name, "python", "-c", HTTP_CLIENT, method, path, key, payload,
            check=False,
        )  # fmt: skip
        if result.returncode != 0:
            self.fail(f"{method} {path} from inside the container failed:\n{result.stderr}")
        answer = json.loads(result.stdout)
        return answer["status"], answer["body"]

    def inspect(self, template: str) -> str:
        return podman("inspect", self.name, "--format", template).stdout.strip()


@pytest.fixture(scope="module")
def image() -> str:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (scripts/install-container-tools.sh installs it)")
    if os.environ.get("TUNELOOP_TEST_IMAGE"):
        return os.environ["TUNELOOP_TEST_IMAGE"]
    start = time.monotonic()
    # Output goes to the terminal with -s, else into the report when the build fails.
    build = subprocess.run(
        [sys.executable, str(REPO / "deploy" / "build_image.py"), "--tag", IMAGE]
    )
    if build.returncode != 0:
        pytest.fail(
            f"building {IMAGE} failed (exit {build.returncode}); its output is in the captured "
            "stdout and stderr (with -s: above)"
        )
    print(f"\n{IMAGE} built (or found in the layer cache) in {time.monotonic() - start:.0f} s")
    return IMAGE


@pytest.fixture(scope="module")
def server(image):
    """The image running with an API key and no network, once /ready says it serves."""
    container = Container(f"tuneloop-test-{secrets.token_hex(4)}", secrets.token_hex(16))
    podman(
        "run", "--detach", "--name", container.name, "--network", "none",
        *build_image.run_options(),
        "--env", f"TUNELOOP_API_KEYS={container.api_key}",
        image,
    )  # fmt: skip
    try:
        _wait_until_ready(container)
        yield container
    finally:
        podman("rm", "--force", "--volumes", "--time", "0", container.name, check=False)


def _wait_until_ready(container: Container) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if container.inspect("{{.State.Status}}") != "running":
            container.fail("the server exited before it was ready")
        status, body = container.http("GET", "/ready")
        if status == 200:
            return
        time.sleep(2)
    container.fail(f"/ready did not answer 200 in {READY_TIMEOUT_S} s (last: {status} {body})")


def test_server_runs_as_the_non_root_user(server):
    status = server.http("GET", "/health")[0]  # any exec: PID 1 is the server
    assert status == 200
    result = podman("exec", server.name, "cat", "/proc/1/status")
    uids = re.search(r"^Uid:\s+(.*)$", result.stdout, re.M)[1].split()
    if set(uids) != {str(SERVER_UID)}:
        server.fail(f"the server process runs as uids {uids}, expected {SERVER_UID} (non-root)")


def test_healthcheck_reports_healthy(server):
    result = podman("healthcheck", "run", server.name, check=False)
    if result.returncode != 0:
        server.fail(f"`podman healthcheck run` failed: {result.stdout}{result.stderr}")
    health = server.inspect("{{.State.Health.Status}}")
    if health != "healthy":
        server.fail(f"health status is {health!r} after a passing check, expected 'healthy'")


def test_ready_lists_the_embedded_model(server):
    status, body = server.http("GET", "/ready")
    assert status == 200, body
    assert json.loads(body) == {"status": "ready", "models": [MODEL]}


def test_chat_completion_needs_the_key_and_answers_in_openai_shape(server):
    request = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}
    status, body = server.http("POST", "/v1/chat/completions", request, key="wrong-key")
    if status != 401:
        server.fail(f"a wrong API key got {status}, expected 401: {body}")
    status, body = server.http("POST", "/v1/chat/completions", request)
    if status != 200:
        server.fail(f"chat completion answered {status}: {body}")
    answer = json.loads(body)
    assert answer["object"] == "chat.completion" and answer["model"] == MODEL
    (choice,) = answer["choices"]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"]
    assert choice["finish_reason"] in {"stop", "length"}
    assert answer["usage"]["completion_tokens"] >= 1


def test_metrics_count_the_request(server):
    status, body = server.http("GET", "/metrics")
    assert status == 200, body
    answered = [
        float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith("tuneloop_requests_total{")
        and f'model="{MODEL}"' in line
        and 'status="200"' in line
    ]
    if sum(answered) < 1:
        server.fail(f"/metrics counts no answered request of {MODEL}:\n{body[:3000]}")
    assert "tuneloop_requests_waiting{" in body and "tuneloop_model_info{" in body


def test_model_was_converted_at_build_time(server):
    assert server.inspect("{{.HostConfig.NetworkMode}}") == "none"
    changed = podman("diff", server.name).stdout
    if "/opt/tuneloop-cache" in changed or "converting" in server.logs():
        server.fail(f"the embedded model was converted in the container:\n{changed}")


def test_sigterm_drains_and_exits_zero(server):
    podman("kill", "--signal", "TERM", server.name)
    exit_code = podman("wait", server.name, timeout=60).stdout.strip()
    logs = server.logs()
    if exit_code != "0":
        server.fail(f"the server exited with {exit_code} after SIGTERM, expected 0")
    for line in ("SIGTERM: draining", "drained; stopping"):
        assert line in logs, f"no {line!r} in the logs:\n{logs}"


# ---- the compose stack: Prometheus scrapes the server ----


@pytest.fixture(scope="module")
def podman_compose() -> list[str]:
    found = shutil.which("podman-compose") or shutil.which(
        "podman-compose", path=str(Path(sys.executable).parent)
    )
    if found is None:
        pytest.skip("podman-compose is not installed (the [dev] extra installs it)")
    # OPTION=VALUE: podman-compose would read a lone value starting with -- as an option
    return [found, "--podman-args=" + " ".join(build_image.podman_options())]


@pytest.fixture(scope="module")
def prometheus_image(image) -> str:
    """Prometheus from Debian's package: prom/prometheus needs a registry."""
    build_image.ensure_base(build_image.LOCAL_BASE)
    start = time.monotonic()
    podman(
        "build", "--format", "docker", "--network", "host",
        "--build-arg", f"BASE_IMAGE={build_image.LOCAL_BASE}",
        "--tag", PROMETHEUS_IMAGE, str(REPO / "deploy" / "prometheus"),
        timeout=900,
    )  # fmt: skip
    print(f"\n{PROMETHEUS_IMAGE} built in {time.monotonic() - start:.0f} s")
    return PROMETHEUS_IMAGE


@dataclass
class Stack:
    project: str
    api_key: str
    server_port: int
    prometheus_port: int

    @property
    def server(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    @property
    def prometheus(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}/api/v1"

    def fail(self, message: str) -> None:
        logs = [
            podman("logs", f"{self.project}_{service}_1", check=False)
            for service in ("tuneloop", "prometheus")
        ]
        pytest.fail(f"{message}\n--- logs ---\n" + "\n".join(r.stdout + r.stderr for r in logs))


@pytest.fixture
def compose_stack(image, prometheus_image, podman_compose, tmp_path):
    """deploy/compose.yaml's server (the base model alone) and Prometheus, on free host ports."""
    stack = Stack(
        f"tuneloop-test-{secrets.token_hex(4)}", secrets.token_hex(16), free_port(), free_port()
    )
    (tmp_path / "adapters").mkdir()
    env = os.environ | {
        "TUNELOOP_API_KEYS": stack.api_key,
        "TUNELOOP_IMAGE": image,
        "PROMETHEUS_IMAGE": prometheus_image,
        "TUNELOOP_COMPOSE_ADAPTER": "",  # no demo adapter here
        "TUNELOOP_DEMO_DIR": str(tmp_path),
        "TUNELOOP_HOST_PORT": str(stack.server_port),
        "PROMETHEUS_HOST_PORT": str(stack.prometheus_port),
    }
    compose = [*podman_compose, "-p", stack.project, "-f", str(REPO / "deploy" / "compose.yaml")]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*compose, *args], env=env, capture_output=True, text=True)

    run_args = "--podman-run-args=" + " ".join(build_image.run_options())
    up = run(run_args, "up", "--detach", "tuneloop", "prometheus")
    try:
        if up.returncode != 0:
            stack.fail(f"podman-compose up failed ({up.returncode}):\n{up.stdout}{up.stderr}")
        yield stack
    finally:
        # rm --volumes: the server image's anonymous volumes (/adapters, /models) too
        down = run("--podman-rm-args=--volumes", "down", "--volumes", "--timeout", "5")
    assert down.returncode == 0, f"podman-compose down failed:\n{down.stdout}{down.stderr}"


def test_compose_prometheus_scrapes_the_server(compose_stack):
    stack = compose_stack
    if not _wait_for(lambda: httpx.get(f"{stack.server}/ready").status_code == 200):
        stack.fail("the server's /ready did not answer 200")
    answer = httpx.post(
        f"{stack.server}/v1/chat/completions",
        headers={"Authorization": f"Bearer {stack.api_key}"},
        json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    if not _wait_for(lambda: _target_health(stack.prometheus) == "up"):
        stack.fail("Prometheus's tuneloop target is not up")
    query = f'tuneloop_requests_total{{job="tuneloop",model="{MODEL}",status="200"}}'
    if not _wait_for(lambda: _query_value(stack.prometheus, query) >= 1):
        stack.fail(f"Prometheus has no {query} >= 1")


def _target_health(prometheus: str) -> str | None:
    targets = httpx.get(f"{prometheus}/targets").json()["data"]["activeTargets"]
    return next((t["health"] for t in targets if t["labels"]["job"] == "tuneloop"), None)


def _query_value(prometheus: str, query: str) -> float:
    result = httpx.get(f"{prometheus}/query", params={"query": query}).json()["data"]["result"]
    return sum(float(series["value"][1]) for series in result)


def _wait_for(check, timeout_s: float = 120) -> bool:
    """Whether check() turns true in time; connection errors count as not yet. Prometheus
    scrapes every 15 s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if check():
                return True
        time.sleep(2)
    return False
