"""Write a bench run as Markdown (tables and ratios), JSON (everything) and a PNG chart."""

from __future__ import annotations

import json
from pathlib import Path

from tuneloop.bench.inproc import MAX_PPL_CHANGE, MIN_TOP1, decode

TARGET_DECODE_B1 = 1.5
"""Issue target: batch-1 decode of tuneloop's fastest passing artifact vs llama.cpp's best."""


def write_report(result: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "bench.json", out / "bench.md"]
    paths[0].write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    paths[1].write_text(markdown(result), encoding="utf-8")
    if "inproc" in result and _chart(result["inproc"], out / "bench.png"):
        paths.append(out / "bench.png")
    return paths


def markdown(result: dict) -> str:
    setup = result["setup"]
    lines = [
        "# tuneloop bench",
        "",
        f"{setup['machine']}; {setup['threads']} threads for every engine; greedy, "
        f"{setup['new_tokens']} new tokens (end token ignored), the same token ids for every "
        f"engine; load average before the run {setup['load_before']}, after "
        f"{result.get('load_after', '?')}. Only ratios within this run mean anything.",
        "",
    ]
    if "inproc" in result:
        lines += _inproc_markdown(result["inproc"])
    for name, reason in result.get("skipped_sections", {}).items():
        lines += [f"## {name}", "", f"Not run: {reason}", ""]
    return "\n".join(lines)


def _inproc_markdown(section: dict) -> list[str]:
    lines = [
        "## In process",
        "",
        "| engine | precision | decode tok/s b1 | b8 | prefill tok/s b1 | TTFT b1 ms "
        "| peak RSS MB | perplexity | change | top-1 agree | quality |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in section["rows"]:
        if "skipped" in row:
            lines.append(f"| {row['label']} | {row['precision']} | {row['skipped']} |||||||||")
            continue
        b1 = row["batches"].get("1", {})
        quality = row.get("quality", {})
        verdict = "pass" if quality.get("passes") else "FAIL"
        if _is_reference(row):
            verdict = "reference"
        lines.append(
            f"| {row['label']} | {row['precision']} | {decode(row, '1'):.1f} "
            f"| {decode(row, '8'):.1f} | {b1.get('prefill_tok_s', 0):.0f} "
            f"| {1000 * b1.get('ttft_s', 0):.0f} | {row['peak_rss_mb']:.0f} "
            f"| {quality.get('ppl', 0):.3f} | {100 * quality.get('ppl_change', 0):+.2f}% "
            f"| {quality.get('top1_agreement', 0):.4f} | {verdict} |"
        )
    lines += [
        "",
        f"Quality: perplexity of the reference answers and top-1 agreement with transformers "
        f"fp32, teacher-forced on the same token ids; `pass` = change at most "
        f"+{100 * MAX_PPL_CHANGE:.0f}% and agreement at least {MIN_TOP1} (the int8 gate).",
        "",
        "### Ratios (fastest passing tuneloop artifact vs each peer's fastest passing variant)",
        "",
    ]
    for key, ratio in section["ratios"].items():
        target = ""
        if key == "decode_b1_vs_llama.cpp":
            met = "met" if ratio["ratio"] >= TARGET_DECODE_B1 else "NOT met"
            target = f" (target {TARGET_DECODE_B1}x: {met})"
        lines.append(
            f"- {key.replace('_', ' ')}: **{ratio['ratio']:.2f}x** "
            f"({ratio['tuneloop']} vs {ratio['peer']}){target}"
        )
    return [*lines, ""]


def _chart(section: dict, path: Path) -> bool:
    rows = [r for r in section["rows"] if "batches" in r]
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [r["label"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.6 * len(rows) + 1.8))
    for ax, batch in zip(axes, ("1", "8"), strict=True):
        values = [decode(r, batch) for r in rows]
        colors = [_color(r) for r in rows]
        ax.barh(labels, values, color=colors)
        for y, value in enumerate(values):
            ax.text(value, y, f" {value:.0f}", va="center", fontsize=8)
        ax.set_title(f"decode tokens/s, batch {batch}")
        ax.invert_yaxis()
        ax.set_xlim(0, max(values + [1]) * 1.2)
    axes[1].set_yticklabels([])
    fig.suptitle("tuneloop bench, in process (grey: fails the quality gate)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _is_reference(row: dict) -> bool:
    return row["engine"] == "transformers" and row["precision"] == "fp32"


def _color(row: dict) -> str:
    if _is_reference(row):
        return "#4c72b0"
    if not row.get("quality", {}).get("passes"):
        return "#bbbbbb"
    return {"tuneloop": "#dd8452", "llama.cpp": "#55a868"}.get(row["engine"], "#8172b2")
