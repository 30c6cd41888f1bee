"""Build tuneloop's Grafana dashboards and its PrometheusRule from their sources.

    python grafana/build.py          # write grafana/dashboards/*.json and the PrometheusRule
    python grafana/build.py --check  # exit 1, naming the stale files, when a copy is out of date

The dashboards are described in grafana/boards.py with grafana-foundation-sdk (the [dev]
extra) and committed as JSON, so Grafana's provisioning, `tuneloop monitor snapshot` and the
integration test read plain files. The alert rules' one source is
grafana/rules/tuneloop.rules.yaml: this script wraps it into
deploy/kubernetes/base/prometheusrule.yaml for prometheus-operator, and the panels draw the SLO
and drift thresholds taken from the rules' expressions, so no copy can drift.

Their building blocks are in grafana/panels.py, the rules file's reader in grafana/rule_file.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# run as a script: its folder is on sys.path
from boards import adapters, drift_view, overview
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from rule_file import load_rules, prometheus_rule

GRAFANA = Path(__file__).resolve().parent
REPO = GRAFANA.parent
DASHBOARDS = GRAFANA / "dashboards"
PROMETHEUS_RULE = REPO / "deploy" / "kubernetes" / "base" / "prometheusrule.yaml"


def rendered() -> dict[Path, str]:
    rules = load_rules()
    files = {PROMETHEUS_RULE: prometheus_rule(rules)}
    for build in (overview, adapters, drift_view):
        built = build(rules).build()
        text = json.dumps(json.loads(JSONEncoder().encode(built)), indent=2, sort_keys=True)
        files[DASHBOARDS / f"{built.uid}.json"] = text + "\n"
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)
    stale = []
    for path, text in rendered().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path.relative_to(REPO))
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if args.check and stale:
        names = ", ".join(map(str, stale))
        print(f"out of date: {names}; run `python grafana/build.py`", file=sys.stderr)
        return 1
    for path in stale:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
