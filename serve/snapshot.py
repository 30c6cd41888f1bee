"""`tuneloop monitor snapshot`: a dashboard's panels rendered to PNG from a real Prometheus.

Grafana's server is not always at hand (CI, a laptop, a review): this runs the same PromQL the
dashboard's panels run, over a time range, and draws each panel with matplotlib, one PNG per
panel plus one page with all of them, and a Markdown index of the queries.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

from tuneloop.errors import UsageError
from tuneloop.serve.dashboards import Dashboard, Panel, load_dashboard, substitute

POINTS = 240
"""Points per series: about what a Grafana panel asks for at a laptop's width."""
COLUMNS = 3


def monitor_snapshot(
    *,
    prometheus: str,
    dashboard: Path,
    out: Path,
    since: str = "30m",
    until: float | None = None,
    var: list[str] | None = None,
    scrape_interval: str = "15s",
) -> int:
    """Render every panel of a Grafana dashboard JSON to PNG, querying a real Prometheus.

    The panels' PromQL runs as Grafana would run it: variables substituted (`--var
    model=support-triage`; unset ones mean All), `$__rate_interval` sized from the step. Writes
    one PNG per panel, `dashboard.png` with all panels, and `snapshot.md`/`snapshot.json`
    listing each query and how many series it returned.

    Args:
        prometheus: Prometheus base URL, e.g. http://127.0.0.1:9090.
        dashboard: dashboard JSON file, e.g. grafana/dashboards/tuneloop-overview.json.
        out: folder for the PNG files and the index.
        since: length of the time range that ends now (or at --until): 15m, 1h, 2h30m.
        until: end of the range as a Unix time (default: now).
        var: a dashboard variable as NAME=VALUE (a regex, as Grafana's); repeatable.
        scrape_interval: Prometheus's scrape interval, which sizes `$__rate_interval`.
    """
    from tuneloop.serve.prometheus import PrometheusAPI, parse_duration

    values = _variables(var or [])
    board = load_dashboard(dashboard)
    unknown = sorted(set(values) - set(board.variables))
    if unknown:
        raise UsageError(
            f"--var {', '.join(unknown)}: not a variable of {dashboard.name} "
            f"(it has: {', '.join(board.variables)})"
        )
    end = until if until is not None else time.time()
    start = end - parse_duration(since)
    api = PrometheusAPI(prometheus)
    result = render(board, api, values, start, end, out, parse_duration(scrape_interval))
    empty = [row["title"] for row in result["panels"] if not row["series"]]
    print(f"{len(result['panels'])} panels of {board.title} written to {out}")
    if empty:
        print(f"no data in: {', '.join(empty)}")
    return 0


def render(
    board: Dashboard,
    api,
    values: dict[str, str],
    start: float,
    end: float,
    out: Path,
    scrape_s: float = 15,
) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    step = max(1.0, (end - start) / POINTS)
    # Grafana's $__rate_interval: one step plus one scrape, and at least four scrapes.
    rate_interval = f"{math.ceil(max(step + scrape_s, 4 * scrape_s))}s"
    rows = len(board.panels) // COLUMNS + bool(len(board.panels) % COLUMNS)
    page, axes = plt.subplots(rows, COLUMNS, figsize=(6 * COLUMNS, 3.4 * rows), squeeze=False)
    index, span = [], (start, end, step)
    for number, panel in enumerate(board.panels):
        fetched = [
            (q, api.query_range(substitute(q.expr, values, rate_interval=rate_interval), *span))
            for q in panel.queries
        ]
        index.append(_index_row(panel, fetched, values, rate_interval))
        _draw(axes[number // COLUMNS][number % COLUMNS], panel, fetched, start, end)
        single, ax = plt.subplots(figsize=(8, 4))
        _draw(ax, panel, fetched, start, end)
        single.tight_layout()
        single.savefig(out / f"{number:02d}-{_slug(panel.title)}.png", dpi=100)
        plt.close(single)
    for spare in range(len(board.panels), rows * COLUMNS):
        axes[spare // COLUMNS][spare % COLUMNS].axis("off")
    window = time.strftime("%Y-%m-%d %H:%M", time.gmtime(start))
    page.suptitle(f"{board.title}  ({window} UTC + {(end - start) / 60:.0f} min)", fontsize=14)
    page.tight_layout()
    page.savefig(out / "dashboard.png", dpi=80)
    plt.close(page)
    result = {"dashboard": board.uid, "start": start, "end": end, "panels": index}
    (out / "snapshot.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    (out / "snapshot.md").write_text(_markdown(board, index), encoding="utf-8")
    return result


def _draw(ax, panel: Panel, fetched, start: float, end: float) -> None:
    """One panel; time in minutes from the range's start, so all panels share one axis."""
    ax.set_title(panel.title, fontsize=10)
    drawn = 0
    for q, series in fetched:
        for item in series:
            points = [(float(t), float(v)) for t, v in item["values"]]
            points = [(t, v) for t, v in points if math.isfinite(v)]
            if not points:
                continue
            times = [(t - start) / 60 for t, _ in points]
            ax.plot(times, [v for _, v in points], lw=1.2, label=_legend(q.legend, item["metric"]))
            drawn += 1
    for threshold in panel.thresholds:
        ax.axhline(threshold, color="red", ls="--", lw=1, label=f"alert {threshold:g}")
    if drawn == 0:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlim(0, (end - start) / 60)
    ax.set_xlabel("minutes", fontsize=8)
    ax.set_ylabel(panel.unit or "", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    if drawn or panel.thresholds:
        ax.legend(fontsize=6, loc="upper left")


def _legend(template: str, labels: dict) -> str:
    if not template:
        return ", ".join(f"{k}={v}" for k, v in labels.items() if k != "__name__") or "value"
    text = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)
    return text.strip() or "value"


def _index_row(panel: Panel, fetched, values: dict[str, str], rate_interval: str) -> dict:
    return {
        "title": panel.title,
        "queries": [substitute(q.expr, values, rate_interval=rate_interval) for q, _ in fetched],
        "series": sum(len(series) for _, series in fetched),
    }


def _markdown(board: Dashboard, index: list[dict]) -> str:
    lines = [
        f"# {board.title}",
        "",
        "![all panels](dashboard.png)",
        "",
        "| panel | series | query |",
    ]
    lines.append("|---|---|---|")
    for row in index:
        for query in row["queries"]:
            escaped = query.replace("|", "\\|")  # a pipe would end the table cell
            lines.append(f"| {row['title']} | {row['series']} | `{escaped}` |")
    return "\n".join(lines) + "\n"


def _variables(pairs: list[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"--var {pair!r}: expected NAME=VALUE, e.g. model=support-triage")
        values[name] = value
    return values


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
