"""The data report of `tuneloop data prepare`: Markdown + JSON, a length histogram and labels."""

from __future__ import annotations

import json
from pathlib import Path

REPORT_MD, REPORT_JSON, LENGTHS_PNG = "data_report.md", "data_report.json", "lengths.png"


def write_report(out: Path, report: dict) -> None:
    (out / REPORT_JSON).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    plot_lengths(out / LENGTHS_PNG, report)
    (out / REPORT_MD).write_text(markdown(report), encoding="utf-8")


def plot_lengths(path: Path, report: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = report.get("labels") or {}
    fig, axes = plt.subplots(1, 2 if labels else 1, figsize=(11 if labels else 6.5, 3.6))
    ax = axes[0] if labels else axes
    for name, split in report["splits"].items():
        if split["lengths"]:
            ax.hist(split["lengths"], bins=30, histtype="step", linewidth=1.6, label=name)
    longest = max(max(s["lengths"], default=0) for s in report["splits"].values())
    if report["max_tokens"] <= longest * 1.5:  # the limit is worth drawing when it is near
        ax.axvline(report["max_tokens"], color="grey", linestyle=":", label="limit")
    ax.set_xlim(
        0, max(longest, report["max_tokens"] if report["max_tokens"] <= longest * 1.5 else 0) * 1.1
    )
    ax.set(xlabel="tokens per example (chat template applied)", ylabel="examples")
    ax.set_title("Example length by split")
    ax.legend()
    if labels:
        names = list(labels)
        bottom = [0] * len(names)
        for split_name, split in report["splits"].items():
            values = [split["labels"].get(n, 0) for n in names]
            axes[1].bar(names, values, bottom=bottom, label=split_name)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        axes[1].set_title(f"Label balance ({report['label_field']})")
        axes[1].tick_params(axis="x", rotation=30)
        axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(report: dict) -> str:
    counts = report["counts"]
    lines = [
        f"# Data report: {Path(report['input']).name}",
        "",
        f"Input `{report['input']}` ({report['format']} format, {counts['records']:,} records), "
        f"prepared with the tokenizer of `{report['base']}` (limit {report['max_tokens']:,} "
        f"tokens per example, over-length examples: {report['overlong']}).",
        "",
        "| split | examples | tokens: min | median | p95 | max |"
        + (" labels |" if report.get("labels") else ""),
        "|---|---|---|---|---|---|" + ("---|" if report.get("labels") else ""),
    ]
    for name, split in report["splits"].items():
        d = split["tokens"]
        row = f"| {name} | {split['examples']:,} | " + " | ".join(
            f"{d.get(k, 0):.0f}" for k in ("min", "median", "p95", "max")
        )
        if report.get("labels"):
            row += " | " + ", ".join(f"{k} {v}" for k, v in split["labels"].items())
        lines.append(row + " |")
    lines += ["", f"![lengths]({LENGTHS_PNG})", "", "## What was removed or changed", ""]
    lines.append("| reason | examples |")
    lines.append("|---|---|")
    for reason, n in report["removed"].items():
        lines.append(f"| {reason} | {n:,} |")
    if not report["removed"]:
        lines.append("| (nothing removed) | 0 |")
    lines += [
        "",
        f"- cleaned (text changed by normalization): {counts['cleaned']:,}",
        f"- truncated to fit the limit: {counts['truncated']:,}",
        f"- near duplicates: prompts with estimated Jaccard similarity of word 3-grams >= "
        f"{report['thresholds']['near_duplicate']} (MinHash, 128 permutations)",
        f"- leakage: validation/test prompts >= {report['thresholds']['leakage']} similar to a "
        "training prompt were removed from validation/test",
    ]
    if report.get("rejects_file"):
        lines.append(
            f"- every removed example, with its line and reason: `{report['rejects_file']}`"
        )
    if report.get("folds"):
        lines.append(f"- {report['folds']} cross-validation folds under `folds/`")
    return "\n".join(lines) + "\n"
