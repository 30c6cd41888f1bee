"""The PromQL of a Grafana dashboard JSON, with its variables substituted as Grafana would.

`tuneloop monitor snapshot` renders these queries and the monitoring integration test checks
that each returns data, so both read the dashboards exactly as Grafana's provisioning does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tuneloop.errors import DataError

ALL = ".*"
"""What a variable's "All" becomes (the dashboards set `allValue: .*`)."""
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


@dataclass(frozen=True)
class PanelQuery:
    expr: str
    legend: str
    instant: bool


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str
    queries: tuple[PanelQuery, ...]
    thresholds: tuple[float, ...]
    """Threshold values the panel draws as lines (an alert's threshold)."""


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    variables: tuple[str, ...]
    panels: tuple[Panel, ...]

    def queries(self) -> list[tuple[Panel, PanelQuery]]:
        return [(panel, q) for panel in self.panels for q in panel.queries]


def load_dashboard(path: Path) -> Dashboard:
    """Read a dashboard JSON file (provisioned form; rows may be flat or nested)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable dashboard JSON file ({exc})") from exc
    if not isinstance(data, dict) or "panels" not in data:
        raise DataError(f"{path}: no `panels` list; is this a Grafana dashboard?")
    variables = tuple(v["name"] for v in data.get("templating", {}).get("list", []))
    panels = tuple(_panel(p) for p in _flat_panels(data["panels"]) if p.get("targets"))
    return Dashboard(data.get("uid", path.stem), data.get("title", path.stem), variables, panels)


def substitute(expr: str, values: Mapping[str, str], *, rate_interval: str) -> str:
    """Replace `$var`, `${var}`, `[[var]]` and Grafana's `$__rate_interval` in a query.

    A variable without a value is "All" (`.*`); `$__interval` and `$__rate_interval` become
    `rate_interval`, which should span at least four scrape intervals, as Grafana's does.
    """

    def replace(match: re.Match) -> str:
        name = next(group for group in match.groups() if group)
        if name in ("__rate_interval", "__interval", "__range"):
            return rate_interval
        return values.get(name, ALL)

    return VARIABLE.sub(replace, expr)


def _flat_panels(panels: list[dict]) -> list[dict]:
    found = []
    for panel in panels:
        found.append(panel)
        found.extend(_flat_panels(panel.get("panels", [])))  # collapsed rows nest theirs
    return found


def _panel(panel: dict) -> Panel:
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    steps = defaults.get("thresholds", {}).get("steps", [])
    drawn = defaults.get("custom", {}).get("thresholdsStyle", {}).get("mode", "off") != "off"
    queries = tuple(
        PanelQuery(t["expr"], t.get("legendFormat", ""), bool(t.get("instant")))
        for t in panel["targets"]
        if t.get("expr") and not t.get("hide")
    )
    return Panel(
        title=panel.get("title", ""),
        unit=defaults.get("unit", ""),
        queries=queries,
        thresholds=tuple(s["value"] for s in steps if drawn and s.get("value") is not None),
    )
