"""The report of `tuneloop eval`: base model and adapter side by side (Markdown + JSON)."""

from __future__ import annotations

import json
from pathlib import Path

ROWS = [
    ("loss", "loss (answer tokens)", "{:.4f}"),
    ("perplexity", "perplexity", "{:.2f}"),
    ("accuracy", "accuracy", "{:.1%}"),
    ("macro_f1", "macro-F1", "{:.3f}"),
    ("valid_json", "valid JSON", "{:.1%}"),
    ("valid_shape", "JSON in the expected shape", "{:.1%}"),
    ("exact_match", "exact match with the reference", "{:.1%}"),
    ("seconds", "evaluation time (s)", "{:.0f}"),
]


def write_eval_report(out: Path, report: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    (out / "eval.md").write_text(markdown(report), encoding="utf-8")


def markdown(report: dict) -> str:
    base, adapter = report["results"]["base"], report["results"]["adapter"]
    lines = [
        f"# Evaluation: {Path(report['adapter']).name}",
        "",
        f"Test data `{report['data']}` ({report['examples']} examples), base `{report['base']}`,"
        f" greedy decoding up to {report['max_new_tokens']} new tokens.",
        "",
        "| metric | base model | adapter |",
        "|---|---|---|",
    ]
    for key, name, fmt in ROWS:
        if key in adapter:
            lines.append(f"| {name} | {fmt.format(base[key])} | {fmt.format(adapter[key])} |")
    if "confusion" in adapter:
        lines += ["", f"## Confusion matrix of the adapter (`{report['label_field']}`)", ""]
        lines += _confusion(adapter["confusion"])
    if "groups" in adapter:
        lines += ["", f"## Accuracy per `{report['group_field']}`", ""]
        lines += ["| group | examples | base | adapter |", "|---|---|---|---|"]
        for group, values in adapter["groups"]["per_group"].items():
            b = base["groups"]["per_group"][group]["accuracy"]
            lines.append(f"| {group} | {values['examples']} | {b:.1%} | {values['accuracy']:.1%} |")
        lines.append(
            f"| largest gap | | {base['groups']['largest_gap']:.1%} | "
            f"{adapter['groups']['largest_gap']:.1%} |"
        )
    lines += ["", "## Examples", ""]
    for sample in report["samples"]:
        lines += [
            f"- **prompt**: {_short(sample['prompt'])}",
            f"  - reference: `{_short(sample['reference'])}`",
            f"  - base: `{_short(sample['base'])}`",
            f"  - adapter: `{_short(sample['adapter'])}`",
        ]
    return "\n".join(lines) + "\n"


def _confusion(table: dict) -> list[str]:
    columns = [c for c in next(iter(table.values())) if any(row[c] for row in table.values())]
    lines = ["| reference \\ predicted | " + " | ".join(columns) + " |"]
    lines.append("|---|" + "---|" * len(columns))
    for label, row in table.items():
        lines.append(f"| {label} | " + " | ".join(str(row[c]) for c in columns) + " |")
    return lines


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split()).replace("`", "'")
    return text if len(text) <= limit else text[: limit - 1] + "…"
