"""Panel, variable and dashboard builders shared by the dashboards of grafana/build.py.

Every query filters by the dashboard variables `instance` and `model` (and `adapter` where it
makes sense); a variable's "All" is `.*`. Panels use `$__rate_interval`, which Grafana sizes
from the scrape interval.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as board
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    VariableRefresh,
    VariableSort,
)

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
SERVER = 'instance=~"$instance", model=~"$model"'
ADAPTER = SERVER + ', adapter=~"$adapter"'
QUANTILES = (0.5, 0.95, 0.99)
LINKS = [
    ("tuneloop-overview", "Overview"),
    ("tuneloop-adapters", "Adapters"),
    ("tuneloop-drift", "Drift"),
]


def query(expr: str, legend: str, ref: str) -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).range()


def series_panel(
    title: str,
    description: str,
    unit: str,
    queries: list[tuple[str, str]],
    *,
    threshold: float | None = None,
    width: int = 8,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(8)
        .line_width(1)
        .fill_opacity(8)
        .show_points(common.VisibilityMode.NEVER)
        .legend(
            common_builder.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
    )
    for index, (expr, legend) in enumerate(queries):
        panel = panel.with_target(query(expr, legend, chr(ord("A") + index)))
    if threshold is not None:
        # The alert's threshold as a red dashed line, so a reader sees how close traffic is.
        panel = panel.thresholds(
            board.ThresholdsConfig()
            .mode(ThresholdsMode.ABSOLUTE)
            .steps([Threshold(None, "green"), Threshold(threshold, "red")])
        ).thresholds_style(
            common_builder.GraphThresholdsStyleConfig().mode(common.GraphTresholdsStyleMode.DASHED)
        )
    return panel


def stat_panel(title: str, description: str, unit: str, expr: str) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(6)
        .height(4)
        .with_target(prometheus.Dataquery().expr(expr).ref_id("A").instant())
    )


def quantiles(metric: str, selector: str, by: str = "") -> list[tuple[str, str]]:
    group = f"{by}, le" if by else "le"
    prefix = "{{" + by + "}} " if by else ""
    return [
        (
            f"histogram_quantile({q}, sum by ({group}) "
            f"(rate({metric}_bucket{{{selector}}}[$__rate_interval])))",
            f"{prefix}p{int(q * 100)}",
        )
        for q in QUANTILES
    ]


def variables(*, adapter: bool) -> list:
    found = [
        board.DatasourceVariable("datasource").label("Prometheus").type("prometheus"),
        label_variable("instance", "label_values(tuneloop_model_info, instance)", "Server"),
        label_variable(
            "model", 'label_values(tuneloop_model_info{instance=~"$instance"}, model)', "Model"
        ),
    ]
    if adapter:
        found.append(
            label_variable(
                "adapter",
                'label_values(tuneloop_model_info{instance=~"$instance", model=~"$model"},'
                " adapter)",
                "Adapter",
            )
        )
    return found


def label_variable(name: str, values_query: str, label: str) -> board.QueryVariable:
    return (
        board.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(values_query)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )


def new_dashboard(uid: str, title: str, description: str, *, adapter: bool) -> board.Dashboard:
    result = (
        board.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["tuneloop"])
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
    )
    for variable in variables(adapter=adapter):
        result = result.with_variable(variable)
    for other, other_title in LINKS:
        if other != uid:
            result = result.link(
                board.DashboardLink(other_title)
                .type("link")
                .url(f"/d/{other}")
                .keep_time(True)
                .include_vars(True)
            )
    return result
