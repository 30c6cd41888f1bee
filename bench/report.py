"""Write a bench run as Markdown (tables and ratios), JSON (everything) and a PNG chart."""

from __future__ import annotations

import json
from pathlib import Path

from tuneloop.bench.inproc import MAX_PPL_CHANGE, MIN_TOP1, decode

TARGET_DECODE_B1 = 1.5
"""Target: batch-1 decode of tuneloop's fastest passing artifact vs llama.cpp's best."""
TARGET_HTTP_16 = 1.5
"""Target: aggregate tokens/s at 16 streaming users vs llama-server -np 8."""
TARGET_OVERHEAD = 0.95
"""Target: tokens/s through HTTP at 1 user vs the same engine in process."""


def write_report(result: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "bench.json", out / "bench.md"]
    paths[0].write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    paths[1].write_text(markdown(result), encoding="utf-8")
    if "inproc" in result and _chart(result["inproc"], out / "bench.png"):
        paths.append(out / "bench.png")
    if "http" in result and _http_chart(result["http"], out / "bench-http.png"):
        paths.append(out / "bench-http.png")
    return paths


def markdown(result: dict) -> str:
    setup = result["setup"]
    lines = [
        "# tuneloop bench",
        "",
        f"{setup['machine']}; {setup['threads']} threads for every engine; greedy, "
        f"{setup['new_tokens']} new tokens (end token ignored), the same token ids for every "
        "engine (batch 1: each prompt in turn; batch 8: eight together); load average "
        f"before the run {setup['load_before']}, after "
        f"{result.get('load_after', '?')}. Only ratios within this run mean anything.",
        "",
    ]
    if "inproc" in result:
        lines += _inproc_markdown(result["inproc"])
    if "http" in result:
        lines += _http_markdown(result["http"])
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
        per_pass = b1.get("tokens_per_pass")
        drafted = f" ({per_pass:.2f} tok/pass)" if per_pass else ""
        lines.append(
            f"| {row['label']} | {row['precision']} | {decode(row, '1'):.1f}{drafted} "
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
    ]
    if any(r.get("engine") == "tuneloop-drafted" for r in section["rows"]):
        lines += [
            "`+ drafts`: the same variant decoding a single prompt speculatively with its drafts "
            "(`tuneloop optimize draft`, built from the training data, never from these "
            "held-out prompts): tokens drafted from the conversation, the draft heads and the "
            "table are checked in one pass and kept while the model chooses them too. Every "
            "other row, peers included, decodes one token per pass; `drafted` ratios compare "
            "the two.",
            "",
        ]
    if section.get("notes"):  # why a peer variant is missing (a failed conversion, a tool)
        lines += ["Peers not measured:", "", *(f"- {note}" for note in section["notes"]), ""]
    judged = "ratios" in section.get("head_to_head", {})
    for title, key in (
        ("variants that pass the whole gate (perplexity and top-1 agreement)", "ratios"),
        (
            "variants with perplexity within +2% of fp32 (the speed target's condition)",
            "ratios_ppl",
        ),
    ):
        lines += [f"### Ratios: fastest tuneloop vs each peer's fastest, {title}", ""]
        lines += _ratio_lines(section.get(key, {}), judged) or ["- no tuneloop variant qualifies"]
        lines.append("")
    if "head_to_head" in section:
        lines += _head_to_head_markdown(section["head_to_head"])
    return lines


def _head_to_head_markdown(section: dict) -> list[str]:
    title = "### Target 1, head to head: batch 1 in one process, the engines taking turns"
    if "ratios" not in section:
        return [title, "", f"- not run: {section.get('skipped', 'no result')}", ""]
    lines = [
        title,
        "",
        f"{len(section['rounds'])} rounds; in each, every engine decodes each batch-1 prompt, "
        "the engines taking turns prompt by prompt (the order rotating). "
        "The rows above ran each engine once in its own process, minutes apart; here a "
        "round's ratio is measured under one set of conditions, and the median of those is "
        "the target's figure.",
        "",
        "128 new tokens per prompt, the end token ignored (every engine does the same work):",
        "",
        *_rounds_markdown(section),
    ]
    if "answers" in section:
        answers = section["answers"]
        lines += [
            f"Answers: {answers['prompts']} held-out prompts, each answered greedily up to its "
            "end token (at most 128 tokens), as `tuneloop serve` answers them:",
            "",
            *_rounds_markdown(answers),
        ]
    return lines


def _rounds_markdown(section: dict) -> list[str]:
    rounds = section["rounds"]
    lines = ["| engine | decode tok/s b1, median | per round |", "|---|---|---|"]
    for label, median in section["median_tok_s"].items():
        each = " / ".join(f"{r[label]:.1f}" for r in rounds)
        lines.append(f"| {label} | {median:.1f} | {each} |")
    lines.append("")
    for label, ratio in section["ratios"].items():
        met = "met" if ratio["median"] >= TARGET_DECODE_B1 else "NOT met"
        lines.append(
            f"- {label} vs {ratio['peer']}: **{ratio['median']:.2f}x** (median of the rounds' "
            f"ratios; {ratio['low']:.2f}-{ratio['high']:.2f}x) (target {TARGET_DECODE_B1}x: {met})"
        )
    return [*lines, ""]


def _ratio_lines(ratios: dict, judged_head_to_head: bool = False) -> list[str]:
    lines = []
    for key, ratio in ratios.items():
        target = ""
        if key in ("decode_b1_vs_llama.cpp", "drafted_decode_b1_vs_llama.cpp"):
            met = "met" if ratio["ratio"] >= TARGET_DECODE_B1 else "NOT met"
            target = f" (target {TARGET_DECODE_B1}x: {met})"
            if judged_head_to_head:
                target = " (separate processes; target 1 is judged head to head, below)"
        lines.append(
            f"- {key.replace('_', ' ')}: **{ratio['ratio']:.2f}x** "
            f"({ratio['tuneloop']} vs {ratio['peer']}){target}"
        )
    return lines


def _http_markdown(section: dict) -> list[str]:
    lines = [
        "## HTTP (locust, streaming users, greedy)",
        "",
        "| server | users | generated tok/s | TTFT p50 ms | TTFT p99 ms | e2e p50 s | e2e p99 s "
        "| requests | errors | resent |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in section["rows"]:
        if "skipped" in row:
            lines.append(f"| {row['label']} | - | {row['skipped']} ||||||||")
        elif not row.get("requests"):
            errors, resent = row.get("errors", 0), row.get("reconnects", 0)
            lines.append(f"| {row['label']} | {row['users']} | no request finished "
                         f"| | | | | 0 | {errors} | {resent} |")  # fmt: skip
        else:
            lines.append(
                f"| {row['label']} | {row['users']} | {row['tokens_per_s']:.1f} "
                f"| {1000 * row['ttft_p50_s']:.0f} | {1000 * row['ttft_p99_s']:.0f} "
                f"| {row['e2e_p50_s']:.2f} | {row['e2e_p99_s']:.2f} | {row['requests']} "
                f"| {row['errors']} | {row.get('reconnects', 0)} |"
            )
    lines += [
        "",
        "`resent`: requests whose connection the server dropped before answering, sent once "
        "more on a fresh connection (the time of both attempts counts).",
        "",
        *_http_ratios(section),
        "",
    ]
    return lines


def _http_ratios(section: dict) -> list[str]:
    rows = [r for r in section["rows"] if r.get("requests")]
    lines = []
    at16 = {r["label"].split(" ")[0]: r for r in rows if r["users"] == 16}
    if "tuneloop" in at16 and "llama-server" in at16:
        ours, theirs = at16["tuneloop"], at16["llama-server"]
        ratio = ours["tokens_per_s"] / theirs["tokens_per_s"]
        met = ratio >= TARGET_HTTP_16 and ours["ttft_p99_s"] <= theirs["ttft_p99_s"]
        lines.append(
            f"- 16 users, tuneloop vs llama-server: **{ratio:.2f}x** tokens/s, p99 TTFT "
            f"{1000 * ours['ttft_p99_s']:.0f} vs {1000 * theirs['ttft_p99_s']:.0f} ms "
            f"(target {TARGET_HTTP_16}x and p99 TTFT no worse: {'met' if met else 'NOT met'})"
        )
    if "overhead_ratio" in section:
        ratio = section["overhead_ratio"]
        pairs = section.get("overhead_pairs", [])
        each = ", ".join(f"{100 * pair['ratio']:.0f}%" for pair in pairs)
        median = (
            f"the median of {len(pairs)} pairs run next to each other, the order alternating: "
            f"{each}"
            if len(pairs) > 1
            else "one pair"
        )
        lines.append(
            f"- server overhead at 1 user: HTTP tokens/s = **{100 * ratio:.0f}%** of the same "
            f"chats, in the same order, through the server's engine in process, without HTTP "
            f"({median}; target {100 * TARGET_OVERHEAD:.0f}%: "
            f"{'met' if ratio >= TARGET_OVERHEAD else 'NOT met'})"
        )
    peaks = section.get("server_peak_rss_mb", {})
    ours = next((mb for label, mb in peaks.items() if label.startswith("tuneloop") and mb), None)
    if ours and section.get("reference_rss_mb"):
        reference = section["reference_rss_mb"]
        theirs = ", ".join(
            f"{label} {mb:.0f} MB"
            for label, mb in peaks.items()
            if mb and not label.startswith("tuneloop")
        )
        lines.append(
            f"- server peak RSS: tuneloop serve **{ours:.0f} MB** vs the transformers fp32 "
            f"process {reference:.0f} MB (target: no more: "
            f"{'met' if ours <= reference else 'NOT met'})" + (f"; {theirs}" if theirs else "")
        )
    return lines


def _http_chart(section: dict, path: Path) -> bool:
    rows = [r for r in section["rows"] if r.get("requests")]
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    servers = list(dict.fromkeys(r["label"] for r in rows))
    users = sorted({r["users"] for r in rows})
    fig, ax = plt.subplots(figsize=(7, 3.4))
    width = 0.8 / len(servers)
    for i, server in enumerate(servers):
        values = [
            next((r["tokens_per_s"] for r in rows if r["label"] == server and r["users"] == u), 0)
            for u in users
        ]
        ax.bar([x + i * width for x in range(len(users))], values, width=width, label=server)
    ax.set_xticks([x + width * (len(servers) - 1) / 2 for x in range(len(users))])
    ax.set_xticklabels([f"{u} user" if u == 1 else f"{u} users" for u in users])
    ax.set_ylabel("generated tokens/s, all users")
    ax.legend(fontsize="small")
    fig.suptitle("tuneloop bench, HTTP (streaming, greedy)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _chart(section: dict, path: Path) -> bool:
    rows = [r for r in section["rows"] if "batches" in r]
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [r["label"] for r in rows]
    turns = section.get("head_to_head", {}).get("rounds")
    panels = 3 if turns else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 0.6 * len(rows) + 1.8))
    for ax, batch in zip(axes, ("1", "8"), strict=False):
        values = [decode(r, batch) for r in rows]
        colors = [_color(r) for r in rows]
        ax.barh(labels, values, color=colors)
        for y, value in enumerate(values):
            ax.text(value, y, f" {value:.0f}", va="center", fontsize=8)
        ax.set_title(f"decode tokens/s, batch {batch}")
        ax.invert_yaxis()
        ax.set_xlim(0, max(values + [1]) * 1.2)
    axes[1].set_yticklabels([])
    if turns:
        colors = {r["label"]: _color(r) for r in rows}  # the same colours as the bars
        _head_to_head_panel(axes[2], section["head_to_head"], colors)
    fig.suptitle("tuneloop bench, in process (grey: fails the quality gate)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _head_to_head_panel(ax, section: dict, colors: dict[str, str]) -> None:
    """Each contender's tokens/s per round (solid: 128 tokens; dashed: answers to their end
    token): the rounds move together when the machine does, which is why target 1 takes the
    median of the rounds' ratios."""
    kinds = [("128 tok", section, "-")]
    if "answers" in section:
        kinds.append(("answers", section["answers"], "--"))
    top = 0.0
    for kind, rounds_of, style in kinds:
        rounds = rounds_of["rounds"]
        numbers = range(1, len(rounds) + 1)
        for label in rounds_of["median_tok_s"]:
            ratio = rounds_of["ratios"].get(label, {}).get("median")
            name = f"{label}, {kind}" + (f" ({ratio:.2f}x)" if ratio else "")
            values = [r[label] for r in rounds]
            ax.plot(numbers, values, style, marker="o", label=name, color=colors.get(label))
            top = max(top, *values)
        ax.set_xticks(list(numbers))
    ax.set_xlabel("round")
    ax.set_ylabel("decode tokens/s")
    ax.set_ylim(0, top * 1.45)
    ax.set_title("batch 1 head to head, one process", fontsize=10)
    ax.legend(fontsize=6, loc="lower right")


def _is_reference(row: dict) -> bool:
    return row["engine"] == "transformers" and row["precision"] == "fp32"


def _color(row: dict) -> str:
    if _is_reference(row):
        return "#4c72b0"
    if not row.get("quality", {}).get("passes"):
        return "#bbbbbb"
    return {"tuneloop": "#dd8452", "llama.cpp": "#55a868"}.get(row["engine"], "#8172b2")
