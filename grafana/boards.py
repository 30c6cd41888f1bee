"""tuneloop's three Grafana dashboards: overview, per adapter, drift (written by grafana/build.py).

Each takes the parsed alert rules, so the threshold lines it draws are the alerts' own.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as board
from panels import ADAPTER, SERVER, new_dashboard, quantiles, series_panel, stat_panel
from rule_file import alert_threshold


def overview(rules: dict) -> board.Dashboard:
    ttft_slo = alert_threshold(rules, "TuneloopTimeToFirstTokenSLO")
    latency_slo = alert_threshold(rules, "TuneloopLatencySLO")
    requests = f"sum(rate(tuneloop_requests_total{{{SERVER}}}[$__rate_interval]))"
    return (
        new_dashboard(
            "tuneloop-overview",
            "tuneloop / Overview",
            "Traffic, latency, errors and capacity of tuneloop servers (all models and adapters).",
            adapter=False,
        )
        .with_row(board.Row("Now"))
        .with_panel(
            stat_panel(
                "Requests/s",
                "Finished requests per second over the last 5 minutes.",
                "reqps",
                f"sum(rate(tuneloop_requests_total{{{SERVER}}}[5m]))",
            )
        )
        .with_panel(
            stat_panel(
                "p99 time to first token",
                f"Over the last 5 minutes. SLO: {ttft_slo:g} s.",
                "s",
                "histogram_quantile(0.99, sum by (le) (rate("
                f"tuneloop_time_to_first_token_seconds_bucket{{{SERVER}}}[5m])))",
            )
        )
        .with_panel(
            stat_panel(
                "Sequences running / waiting",
                "Sequences in the running batch and requests waiting for a slot, now.",
                "short",
                f"sum(tuneloop_requests_running{{{SERVER}}})"
                f" + sum(tuneloop_requests_waiting{{{SERVER}}})",
            )
        )
        .with_panel(
            stat_panel(
                "tuneloop alerts firing",
                "Alerts of grafana/rules/tuneloop.rules.yaml firing now.",
                "short",
                'count(ALERTS{alertname=~"Tuneloop.*", alertstate="firing"}) or vector(0)',
            )
        )
        .with_row(board.Row("Traffic and errors"))
        .with_panel(
            series_panel(
                "Requests/s by status",
                "Finished requests by HTTP status; 499: the client went away.",
                "reqps",
                [
                    (
                        "sum by (status) "
                        f"(rate(tuneloop_requests_total{{{SERVER}}}[$__rate_interval]))",
                        "{{status}}",
                    )
                ],
            )
        )
        .with_panel(
            series_panel(
                "Tokens/s",
                "Generated tokens (out) and prompt tokens (in) per second; of the prompt "
                "tokens, those the prefix cache served instead of computing; of the generated "
                "ones, those drafted and kept by speculative decoding.",
                "short",
                [
                    (
                        f"sum(rate(tuneloop_generated_tokens_total{{{SERVER}}}[$__rate_interval]))",
                        "generated",
                    ),
                    (
                        f"sum(rate(tuneloop_prompt_tokens_total{{{SERVER}}}[$__rate_interval]))",
                        "prompt",
                    ),
                    (
                        "sum(rate(tuneloop_cached_prompt_tokens_total"
                        f"{{{SERVER}}}[$__rate_interval]))",
                        "prompt, from cache",
                    ),
                    (
                        "sum(rate(tuneloop_draft_accepted_tokens_total"
                        f"{{{SERVER}}}[$__rate_interval]))",
                        "generated, from drafts",
                    ),
                ],
            )
        )
        .with_panel(
            series_panel(
                "Error ratio by kind",
                "Failed requests by kind as a share of all requests.",
                "percentunit",
                [
                    (
                        "sum by (kind) (rate(tuneloop_request_errors_total"
                        f"{{{SERVER}}}[$__rate_interval])) / ignoring (kind) group_left "
                        f"{requests}",
                        "{{kind}}",
                    )
                ],
            )
        )
        .with_row(board.Row("Latency"))
        .with_panel(
            series_panel(
                "End-to-end latency",
                "Arrival to last byte.",
                "s",
                quantiles("tuneloop_request_duration_seconds", SERVER),
                threshold=latency_slo,
            )
        )
        .with_panel(
            series_panel(
                "Time to first token",
                "Arrival to the first generated token (queue wait + prefill).",
                "s",
                quantiles("tuneloop_time_to_first_token_seconds", SERVER),
                threshold=ttft_slo,
            )
        )
        .with_panel(
            series_panel(
                "Inter-token latency",
                "Gap between consecutive generated tokens of one sequence.",
                "s",
                quantiles("tuneloop_inter_token_latency_seconds", SERVER),
            )
        )
        .with_row(board.Row("Capacity"))
        .with_panel(
            series_panel(
                "Queue and batch occupancy",
                "Sequences in the running batch and requests waiting for a slot.",
                "short",
                [
                    (
                        f"sum by (model) (tuneloop_requests_running{{{SERVER}}})",
                        "{{model}} running",
                    ),
                    (
                        f"sum by (model) (tuneloop_requests_waiting{{{SERVER}}})",
                        "{{model}} waiting",
                    ),
                ],
            )
        )
        .with_panel(
            series_panel(
                "Sequences per decode step",
                "Mean batch size of the decode steps.",
                "short",
                [
                    (
                        "sum by (model) (rate(tuneloop_batch_size_sum"
                        f"{{{SERVER}}}[$__rate_interval])) / sum by (model) "
                        f"(rate(tuneloop_batch_size_count{{{SERVER}}}[$__rate_interval]))",
                        "{{model}}",
                    )
                ],
            )
        )
        .with_panel(
            series_panel(
                "Queue wait",
                "Arrival to the start of prefill.",
                "s",
                quantiles("tuneloop_queue_wait_seconds", SERVER),
            )
        )
        .with_row(board.Row("Process"))
        .with_panel(
            series_panel(
                "CPU",
                "CPU cores the server process uses.",
                "short",
                [
                    (
                        'rate(process_cpu_seconds_total{instance=~"$instance"}[$__rate_interval])',
                        "{{instance}}",
                    )
                ],
                width=12,
            )
        )
        .with_panel(
            series_panel(
                "Resident memory",
                "Resident set size of the server process.",
                "bytes",
                [('process_resident_memory_bytes{instance=~"$instance"}', "{{instance}}")],
                width=12,
            )
        )
    )


def adapters(rules: dict) -> board.Dashboard:
    drift = alert_threshold(rules, "TuneloopDriftHigh")
    by_adapter = "sum by (adapter) (rate({metric}{{" + ADAPTER + "}}[$__rate_interval]))"
    return (
        new_dashboard(
            "tuneloop-adapters",
            "tuneloop / Adapters",
            "The same signals per adapter: pick adapters with the variable.",
            adapter=True,
        )
        .with_panel(
            series_panel(
                "Requests/s",
                "Finished requests per adapter.",
                "reqps",
                [(by_adapter.format(metric="tuneloop_requests_total"), "{{adapter}}")],
            )
        )
        .with_panel(
            series_panel(
                "Error ratio",
                "Failed requests (every kind) as a share of the adapter's requests.",
                "percentunit",
                [
                    (
                        by_adapter.format(metric="tuneloop_request_errors_total")
                        + " / "
                        + by_adapter.format(metric="tuneloop_requests_total"),
                        "{{adapter}}",
                    )
                ],
            )
        )
        .with_panel(
            series_panel(
                "Generated tokens/s",
                "Tokens generated per second per adapter.",
                "short",
                [(by_adapter.format(metric="tuneloop_generated_tokens_total"), "{{adapter}}")],
            )
        )
        .with_panel(
            series_panel(
                "Time to first token p95",
                "Per adapter.",
                "s",
                [quantiles("tuneloop_time_to_first_token_seconds", ADAPTER, "adapter")[1]],
            )
        )
        .with_panel(
            series_panel(
                "End-to-end latency p95",
                "Per adapter.",
                "s",
                [quantiles("tuneloop_request_duration_seconds", ADAPTER, "adapter")[1]],
            )
        )
        .with_panel(
            series_panel(
                "Largest drift (PSI)",
                "The largest PSI over the adapter's features; the dashed line is the alert's.",
                "short",
                [
                    (
                        f'max by (adapter) (tuneloop_drift_score{{{ADAPTER}, method="psi"}})',
                        "{{adapter}}",
                    )
                ],
                threshold=drift,
            )
        )
    )


def drift_view(rules: dict) -> board.Dashboard:
    threshold = alert_threshold(rules, "TuneloopDriftHigh")
    return (
        new_dashboard(
            "tuneloop-drift",
            "tuneloop / Drift",
            "Served traffic against each adapter's training reference profile. PSI < 0.1: "
            "stable, 0.1-0.25: moderate shift, > 0.25: significant. The dashed line is the "
            "TuneloopDriftHigh threshold.",
            adapter=True,
        )
        .with_panel(
            series_panel(
                "PSI by feature",
                "Population stability index of each feature's histogram, window vs reference.",
                "short",
                [
                    (
                        "max by (adapter, feature) "
                        f'(tuneloop_drift_score{{{ADAPTER}, method="psi"}})',
                        "{{adapter}} {{feature}}",
                    )
                ],
                threshold=threshold,
                width=12,
            )
        )
        .with_panel(
            series_panel(
                "Jensen-Shannon divergence by feature",
                "Base 2, between 0 (same distribution) and 1.",
                "short",
                [
                    (
                        "max by (adapter, feature) "
                        f'(tuneloop_drift_score{{{ADAPTER}, method="js"}})',
                        "{{adapter}} {{feature}}",
                    )
                ],
                width=12,
            )
        )
        .with_panel(
            series_panel(
                "Prompt embedding centroid distance",
                "Cosine distance between the window's and the training prompts' mean embedding.",
                "short",
                [
                    (
                        "max by (adapter) (tuneloop_drift_score{" + ADAPTER + ', method="cosine"})',
                        "{{adapter}}",
                    )
                ],
                width=12,
            )
        )
        .with_panel(
            series_panel(
                "Requests in the drift window",
                "Requests each adapter's window holds; scores appear once it holds the minimum"
                " (TUNELOOP_DRIFT_MIN_REQUESTS).",
                "short",
                [
                    (
                        f"max by (adapter) (tuneloop_drift_window_requests{{{ADAPTER}}})",
                        "{{adapter}}",
                    )
                ],
                width=12,
            )
        )
        .with_panel(
            series_panel(
                "Prompt and completion tokens per request",
                "Mean tokens per finished request: a quick look at the length features.",
                "short",
                [
                    (
                        f"sum by (adapter) (rate(tuneloop_prompt_tokens_total{{{ADAPTER}}}"
                        "[$__rate_interval])) / sum by (adapter) (rate(tuneloop_requests_total"
                        f"{{{ADAPTER}}}[$__rate_interval]))",
                        "{{adapter}} prompt",
                    ),
                    (
                        f"sum by (adapter) (rate(tuneloop_generated_tokens_total{{{ADAPTER}}}"
                        "[$__rate_interval])) / sum by (adapter) (rate(tuneloop_requests_total"
                        f"{{{ADAPTER}}}[$__rate_interval]))",
                        "{{adapter}} completion",
                    ),
                ],
                width=12,
            )
        )
    )
