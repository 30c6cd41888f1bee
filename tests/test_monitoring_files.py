"""grafana/: the alert rules, their unit tests, the Alertmanager example and the dashboards pass
the tools users run on them, agree with each other, and query only metrics the server exports."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from tuneloop.serve.dashboards import load_dashboard, substitute
from tuneloop.serve.metrics import Metrics

GRAFANA = REPO / "grafana"
RULES = GRAFANA / "rules" / "tuneloop.rules.yaml"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
METRIC = re.compile(r"\b((?:tuneloop|process)_[a-z_]+)\b")


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (bash scripts/install-system-packages.sh)")
    return path


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=120)


def alert_rules() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def exported_names() -> set[str]:
    """Metric families and series names, including families with no series yet (drift)."""
    metrics = Metrics()
    metrics.add_model("base", None, {"backend": "torch"})
    names = set()
    for family in metrics.registry.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names


def test_promtool_accepts_the_rules_and_their_unit_tests_pass():
    promtool = tool("promtool")
    checked = run(promtool, "check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = run(promtool, "test", "rules", str(GRAFANA / "tests" / "tuneloop.rules.test.yaml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_is_unit_tested_firing_and_not_firing():
    tests = yaml.safe_load((GRAFANA / "tests" / "tuneloop.rules.test.yaml").read_text())["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]
    for rule in alert_rules():
        name = rule["alert"]
        outcomes = {bool(case["exp_alerts"]) for case in cases if case["alertname"] == name}
        assert outcomes == {True, False}, f"{name}: needs a firing and a quiet test case"


def test_every_alert_says_what_to_do():
    for rule in alert_rules():
        annotations = rule.get("annotations", {})
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert annotations.get("summary"), f"{rule['alert']} has no summary"
        assert len(annotations.get("runbook", "")) > 80, f"{rule['alert']}: runbook too thin"


def test_alertmanager_example_is_valid():
    amtool = tool("amtool")
    checked = run(amtool, "check-config", str(GRAFANA / "alertmanager.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_generated_files_match_their_sources():
    pytest.importorskip("grafana_foundation_sdk", reason="the [dev] extra installs it")
    built = run(sys.executable, str(GRAFANA / "build.py"), "--check")
    assert built.returncode == 0, built.stderr


def test_the_prometheus_rule_carries_exactly_the_rules_file():
    source = yaml.safe_load(RULES.read_text())["groups"]
    resource = yaml.safe_load(
        (REPO / "deploy" / "kubernetes" / "base" / "prometheusrule.yaml").read_text()
    )
    assert resource["kind"] == "PrometheusRule"
    assert resource["spec"]["groups"] == source


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboards_query_only_metrics_the_server_exports(path: Path):
    exported = exported_names()
    board = load_dashboard(path)
    assert board.panels, f"{path.name} has no panels with queries"
    for panel, query in board.queries():
        for name in METRIC.findall(query.expr):
            assert name in exported, f"{path.name} / {panel.title}: {name} is not exported"


def test_rules_query_only_metrics_the_server_exports():
    exported = exported_names()
    for rule in alert_rules():
        for name in METRIC.findall(rule["expr"]):
            assert name in exported, f"{rule['alert']}: {name} is not exported"


def test_threshold_lines_are_the_alerts_thresholds():
    thresholds = {}
    for rule in alert_rules():
        match = re.search(r">\s*([0-9.]+)\s*$", rule["expr"].strip())
        if match:
            thresholds[rule["alert"]] = float(match.group(1))
    drift = load_dashboard(GRAFANA / "dashboards" / "tuneloop-drift.json")
    psi = next(p for p in drift.panels if p.title == "PSI by feature")
    assert psi.thresholds == (thresholds["TuneloopDriftHigh"],)
    overview = load_dashboard(GRAFANA / "dashboards" / "tuneloop-overview.json")
    ttft = next(p for p in overview.panels if p.title == "Time to first token")
    assert ttft.thresholds == (thresholds["TuneloopTimeToFirstTokenSLO"],)


def test_promql_parses_with_variables_substituted():
    """promtool has no PromQL checker for a single query; a recording rule per query is one."""
    promtool = tool("promtool")
    rules = []
    for path in DASHBOARDS:
        for number, (_, query) in enumerate(load_dashboard(path).queries()):
            expr = substitute(query.expr, {}, rate_interval="1m")
            rules.append({"record": f"check:{path.stem.replace('-', '_')}:{number}", "expr": expr})
    checked_file = REPO / ".pytest_cache" / "dashboard-queries.rules.yaml"
    checked_file.parent.mkdir(exist_ok=True)
    checked_file.write_text(yaml.safe_dump({"groups": [{"name": "queries", "rules": rules}]}))
    checked = run(promtool, "check", "rules", str(checked_file))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_promtool_finds_nothing_wrong_with_the_exposition(tmp_path):
    promtool = tool("promtool")
    metrics = Metrics()
    metrics.add_model("base", "support-triage", {"backend": "torch", "precision": "fp32"})
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=metrics.exposition(), capture_output=True, timeout=60
    )
    assert checked.returncode == 0 and not checked.stdout.strip() and not checked.stderr.strip(), (
        checked.stdout + checked.stderr
    )


def test_variables_substitute_like_grafana():
    expr = 'rate(x{model=~"$model", adapter=~"${adapter}", i=~"[[instance]]"}[$__rate_interval])'
    got = substitute(expr, {"model": "base"}, rate_interval="2m")
    assert got == 'rate(x{model=~"base", adapter=~".*", i=~".*"}[2m])'
