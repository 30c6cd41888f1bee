"""The monitoring stack against the real thing: `tuneloop serve` with the embedded model, a real
Prometheus scraping it every second with grafana/'s alert rules, and locust driving traffic.

Phase 1 sends support tickets held out of the adapter's reference profile: no alert may fire.
Phase 2 sends prompts unlike the training data and a share of invalid requests: the drift and
client-error alerts must fire. Then every query of every dashboard panel (variables
substituted as Grafana would) must return data, and the snapshot renders every panel.

The rules are loaded with `for:` set to zero (the real durations are minutes; their effect is
covered by the promtool unit tests in grafana/tests/); everything else is the shipped file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from monitoring_helpers import ADAPTER_NAME, make_served_adapter
from serving.serve_helpers import start_server

from tuneloop.serve.dashboards import load_dashboard, substitute
from tuneloop.serve.prometheus import LocalPrometheus, PrometheusAPI

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RULES = REPO / "grafana" / "rules" / "tuneloop.rules.yaml"
DASHBOARDS = sorted((REPO / "grafana" / "dashboards").glob("*.json"))
PHASE_REQUESTS = 220
"""Requests per phase: enough to fill the server's drift window (200, the default) with each."""
PHASE_LIMIT_S = 900
USERS = 2
ALERT_WAIT_S = 60
EXPECTED_IN_SHIFT = {"TuneloopDriftHigh", "TuneloopClientErrors"}


@pytest.fixture(scope="module")
def adapter(tmp_path_factory) -> Path:
    return make_served_adapter(tmp_path_factory.mktemp("monitoring") / ADAPTER_NAME)


def immediate_rules(folder: Path) -> Path:
    """The shipped rules with every `for:` at zero, so a phase of a minute can fire them."""
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("for", None)
    path = folder / "tuneloop.rules.yaml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return path


def drive(url: str, phase: str, folder: Path) -> str:
    """Run locust headless for one phase; returns its summary."""
    env = {
        **os.environ,
        "TUNELOOP_LOAD_PHASE": phase,
        "TUNELOOP_LOAD_MODEL": ADAPTER_NAME,
        "TUNELOOP_LOAD_REQUESTS": str(PHASE_REQUESTS),
        "PYTHONPATH": str(REPO / "tests"),
    }
    command = [
        sys.executable, "-m", "locust", "-f", str(REPO / "tests" / "monitoring_load.py"),
        "--headless", "--users", str(USERS), "--spawn-rate", str(USERS),
        "--run-time", f"{PHASE_LIMIT_S}s", "--host", url, "--only-summary",
        "--csv", str(folder / phase), "--stop-timeout", "30",
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=PHASE_LIMIT_S + 60
    )
    assert done.returncode in (0, 1), done.stderr[-3000:]  # 1: some requests failed (phase 2)
    return done.stderr[-3000:]


def active_alerts(api: PrometheusAPI) -> dict[str, str]:
    return {alert["labels"]["alertname"]: alert["state"] for alert in api.alerts()}


def wait_for_alerts(api: PrometheusAPI, names: set[str], timeout_s: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    while True:
        alerts = active_alerts(api)
        if all(alerts.get(name) == "firing" for name in names) or time.monotonic() > deadline:
            return alerts
        time.sleep(2)


def test_dashboards_and_alerts_against_real_prometheus(adapter, tmp_path):
    started = time.time()
    server = start_server(
        ["--adapter", f"{ADAPTER_NAME}={adapter}", "--max-batch-size", "4"],
        tmp_path,
        # Scores only from a full window: on fewer requests PSI mostly measures sampling noise.
        env={"TUNELOOP_DRIFT_MIN_REQUESTS": "200"},
    )
    try:
        with LocalPrometheus(
            targets=[f"127.0.0.1:{server.port}"],
            workdir=tmp_path / "prometheus",
            rule_files=[immediate_rules(tmp_path)],
        ) as prometheus:
            api = PrometheusAPI(prometheus.url)
            deadline = time.monotonic() + 30
            while not api.targets_up() and time.monotonic() < deadline:
                time.sleep(1)
            assert api.targets_up(), f"Prometheus never scraped the server: {prometheus.log_tail()}"

            healthy = drive(server.url, "healthy", tmp_path)
            time.sleep(5)  # a few scrapes and rule evaluations after the last request
            scored = api.query('tuneloop_drift_score{method="psi"}')
            assert scored, f"no drift scores after the healthy phase\n{healthy}"
            quiet = active_alerts(api)
            assert quiet == {}, f"alerts in the healthy phase: {quiet}\n{healthy}\n{_drift(api)}"

            shifted = drive(server.url, "shifted", tmp_path)
            alerts = wait_for_alerts(api, EXPECTED_IN_SHIFT, ALERT_WAIT_S)
            for name in EXPECTED_IN_SHIFT:
                assert alerts.get(name) == "firing", f"{name}: {alerts}\n{shifted}\n{_drift(api)}"
            assert "TuneloopServerErrors" not in alerts, alerts

            empty = []
            for path in DASHBOARDS:
                board = load_dashboard(path)
                for panel, query in board.queries():
                    expr = substitute(query.expr, {}, rate_interval="2m")
                    if not api.query(expr):
                        empty.append(f"{path.stem} / {panel.title}: {expr}")
            assert not empty, "panels without data:\n" + "\n".join(empty)

            _snapshot_every_dashboard(prometheus.url, tmp_path, f"{time.time() - started:.0f}s")
    finally:
        assert server.stop() == 0, server.log()[-3000:]


def _snapshot_every_dashboard(url: str, tmp_path: Path, since: str) -> None:
    """Render each dashboard; TUNELOOP_SNAPSHOT_DIR keeps them (the README's pictures)."""
    from tuneloop.serve.snapshot import monitor_snapshot

    keep = os.environ.get("TUNELOOP_SNAPSHOT_DIR")
    for path in DASHBOARDS:
        out = (Path(keep) if keep else tmp_path / "snapshots") / path.stem
        monitor_snapshot(
            # rate() over 20 s windows: smoother than the 4 s that a 1 s scrape would give
            prometheus=url,
            dashboard=path,
            out=out,
            since=since,
            scrape_interval="5s",
        )
        panels = load_dashboard(path).panels
        assert len(list(out.glob("[0-9][0-9]-*.png"))) == len(panels)
        assert (out / "dashboard.png").stat().st_size > 10_000


def _drift(api: PrometheusAPI) -> str:
    rows = api.query('tuneloop_drift_score{method="psi"}')
    return "drift psi: " + ", ".join(
        f"{row['metric'].get('feature')}={float(row['value'][1]):.3f}" for row in rows
    )
