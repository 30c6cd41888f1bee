"""`tuneloop monitor snapshot` draws every panel of a dashboard from what Prometheus returns."""

from __future__ import annotations

import json

import pytest
from conftest import REPO

from tuneloop.errors import UsageError
from tuneloop.serve.dashboards import load_dashboard
from tuneloop.serve.snapshot import monitor_snapshot, render

OVERVIEW = REPO / "grafana" / "dashboards" / "tuneloop-overview.json"


class FakePrometheus:
    """Answers range queries with one rising series per query; remembers what it was asked."""

    def __init__(self, empty: str = "") -> None:
        self.asked: list[str] = []
        self.empty = empty

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        self.asked.append(expr)
        if self.empty and self.empty in expr:
            return []
        points = [[start + i * step, str(i * 0.1)] for i in range(int((end - start) / step))]
        return [{"metric": {"model": "base", "status": "200"}, "values": points}]


def test_every_panel_is_drawn_and_indexed(tmp_path):
    board = load_dashboard(OVERVIEW)
    api = FakePrometheus(empty="process_resident_memory_bytes")
    result = render(board, api, {"model": "base"}, 1_000_000.0, 1_000_600.0, tmp_path)
    assert len(list(tmp_path.glob("[0-9][0-9]-*.png"))) == len(board.panels)
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
    assert all('model=~"base"' in expr for expr in api.asked if "model=~" in expr)
    assert not any("$" in expr for expr in api.asked), "a variable was left in a query"
    index = json.loads((tmp_path / "snapshot.json").read_text())
    assert index == result
    empty = [row["title"] for row in index["panels"] if row["series"] == 0]
    assert empty == ["Resident memory"]
    assert "| Resident memory | 0 |" in (tmp_path / "snapshot.md").read_text()


def test_rate_interval_follows_the_scrape_interval(tmp_path):
    api = FakePrometheus()
    board = load_dashboard(OVERVIEW)
    render(board, api, {}, 0.0, 600.0, tmp_path, scrape_s=15)
    assert any("[60s]" in expr for expr in api.asked)  # 4 scrapes of 15 s


def test_unknown_variable_is_refused_naming_the_known_ones(tmp_path):
    with pytest.raises(UsageError, match="adapter.*not a variable.*instance, model"):
        monitor_snapshot(
            prometheus="http://127.0.0.1:1", dashboard=OVERVIEW, out=tmp_path, var=["adapter=x"]
        )


def test_bad_variable_syntax_and_duration_are_clear(tmp_path):
    with pytest.raises(UsageError, match="NAME=VALUE"):
        monitor_snapshot(prometheus="http://x", dashboard=OVERVIEW, out=tmp_path, var=["model"])
    with pytest.raises(UsageError, match="not a duration"):
        monitor_snapshot(prometheus="http://x", dashboard=OVERVIEW, out=tmp_path, since="soon")


def test_a_file_that_is_not_a_dashboard_is_named(tmp_path):
    bogus = tmp_path / "rules.json"
    bogus.write_text("[1, 2]")
    from tuneloop.errors import DataError

    with pytest.raises(DataError, match="rules.json"):
        load_dashboard(bogus)
