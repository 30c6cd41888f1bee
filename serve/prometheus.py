"""A local Prometheus next to a tuneloop server, and the few HTTP API calls tuneloop makes.

`tuneloop demo`, `tuneloop monitor snapshot` and the monitoring integration test use a real
Prometheus (Debian's `prometheus` package, installed by scripts/install-system-packages.sh):
`LocalPrometheus` writes a scrape configuration for the given targets and alert rule files,
starts the binary on a free port with its own data folder, and stops it on exit.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from tuneloop.errors import MissingDependencyError, MonitoringError, UsageError
from tuneloop.ports import free_port

INSTALL_HINT = "bash scripts/install-system-packages.sh (or: sudo apt-get install prometheus)"
JOB = "tuneloop"
"""The scrape job name the alert rules expect (`up{job="tuneloop"}`)."""


@dataclass
class LocalPrometheus:
    """A Prometheus process scraping `targets` ("host:port") every `scrape_interval`."""

    targets: Sequence[str]
    workdir: Path
    rule_files: Sequence[Path] = ()
    scrape_interval: str = "1s"
    evaluation_interval: str = "1s"
    port: int = 0
    """0: a free port."""
    binary: str = "prometheus"
    process: subprocess.Popen | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LocalPrometheus:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout_s: float = 60) -> None:
        binary = shutil.which(self.binary)
        if binary is None:
            raise MissingDependencyError(
                f"`{self.binary}` is not installed; install it with: {INSTALL_HINT}"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config(), sort_keys=False), encoding="utf-8")
        self._log = (self.workdir / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise MonitoringError(
                    f"Prometheus exited with {self.process.returncode}: {self.log_tail()}"
                )
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise MonitoringError(f"Prometheus did not become ready in {timeout_s:.0f} s")

    def config(self) -> dict:
        return {
            "global": {
                "scrape_interval": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
            },
            "rule_files": [str(Path(f).resolve()) for f in self.rule_files],
            "scrape_configs": [
                {"job_name": JOB, "static_configs": [{"targets": list(self.targets)}]}
            ],
        }

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if getattr(self, "_log", None) is not None:
            self._log.close()

    def log_tail(self, lines: int = 5) -> str:
        path = self.workdir / "prometheus.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return " | ".join(text.strip().splitlines()[-lines:])


class PrometheusAPI:
    """The HTTP API calls tuneloop needs: instant and range queries, alerts, targets."""

    def __init__(self, url: str, timeout_s: float = 30) -> None:
        self.url = url.rstrip("/")
        self.client = httpx.Client(timeout=timeout_s)

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        params = {"query": expr} | ({"time": f"{at:.3f}"} if at is not None else {})
        return self._get("/api/v1/query", params)["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        return self._get("/api/v1/query_range", params)["result"]

    def alerts(self) -> list[dict]:
        """Alerts pending or firing now, each with `labels` and `state`."""
        return self._get("/api/v1/alerts", {})["alerts"]

    def targets_up(self) -> list[dict]:
        return [t for t in self._get("/api/v1/targets", {})["activeTargets"] if t["health"] == "up"]

    def _get(self, path: str, params: dict) -> dict:
        try:
            response = self.client.get(self.url + path, params=params)
        except httpx.HTTPError as exc:
            raise MonitoringError(f"cannot reach Prometheus at {self.url}: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or body.get("status") != "success":
            detail = body.get("error") or response.text[:200]
            raise MonitoringError(
                f"Prometheus refused {path} {params.get('query', '')!r}: {detail}"
            )
        return body["data"]


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus-style duration: 90s, 15m, 1h30m, 2d."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)", text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise UsageError(f"not a duration: {text!r} (examples: 90s, 15m, 1h30m)")
    return sum(float(n) * units[u] for n, u in parts)
