"""Markdown and PNG reports for one verified variant and for the summary of `optimize all`."""

from __future__ import annotations

from pathlib import Path

STATUS_MARK = {"passed": "PASS", "failed": "FAIL", "reference": "reference"}


def write_verify_report(folder: Path, result: dict) -> None:
    (folder / "verify.md").write_text(verify_markdown(result), encoding="utf-8")
    verify_chart(result, folder / "verify.png")


def verify_markdown(result: dict) -> str:
    q, gate = result["quality"], result["gate"]
    t = gate["thresholds"]
    lines = [
        f"# Quality gate: {result['variant']} ({STATUS_MARK[gate['status']]})",
        "",
        f"Candidate `{result['candidate']}` against the fp32 reference `{result['reference']}` "
        f"on {result['samples']} examples of `{result['data']}` ({q['positions']} answer tokens, "
        "teacher-forced).",
        "",
        "| measure | reference | candidate | limit |",
        "|---|---|---|---|",
        f"| perplexity | {q['reference_perplexity']:.4f} | {q['candidate_perplexity']:.4f} "
        f"| change {q['perplexity_change']:+.2%} (max +{t['max_ppl_increase']:.1%}) |",
        f"| top-1 agreement | 1 | {q['top1_agreement']:.4f} | min {t['min_top1']:.2f} |",
        f"| mean / p99 / max KL | 0 | {q['mean_kl']:.4f} / {q['p99_kl']:.4f} / {q['max_kl']:.4f} "
        f"| {t['max_kl'] if t['max_kl'] is not None else 'not gated'} |",
    ]
    if task := result.get("task"):
        ref, cand = task["reference"], task["candidate"]
        lines += [
            f"| accuracy (`{task['label_field']}`, {cand['examples']} ex.) | {ref['accuracy']:.3f} "
            f"| {cand['accuracy']:.3f} | drop at most {t['max_accuracy_drop']} |",
            f"| macro-F1 | {ref['macro_f1']:.3f} | {cand['macro_f1']:.3f} | |",
            f"| valid JSON with the label | {ref['valid_json']:.3f} | {cand['valid_json']:.3f} | |",
        ]
    size = result["size_mb"]
    lines.append(f"| weights on disk (MB) | {size['reference']:.0f} | {size['candidate']:.0f} | |")
    if speed := result.get("speed"):
        lines += _speed_rows(speed)
    lines += ["", "## Verdict", ""]
    lines += [f"- {f}" for f in gate["failures"]] or ["- every threshold is met"]
    return "\n".join(lines) + "\n"


def _speed_rows(speed: dict) -> list[str]:
    ref, cand = speed["reference"], speed["candidate"]
    rows = [
        f"| load time (s) | {ref['load_seconds']:.1f} | {cand['load_seconds']:.1f} | |",
        f"| peak RSS (MB) | {ref['peak_rss_mb']:.0f} | {cand['peak_rss_mb']:.0f} | |",
    ]
    for batch in ref["decode_tokens_per_s"]:
        rows.append(
            f"| prefill tok/s, batch {batch} | {ref['prefill_tokens_per_s'][batch]:.0f} "
            f"| {cand['prefill_tokens_per_s'][batch]:.0f} | |"
        )
        rows.append(
            f"| decode tok/s, batch {batch} | {ref['decode_tokens_per_s'][batch]:.1f} "
            f"| {cand['decode_tokens_per_s'][batch]:.1f} "
            f"| {speed['decode_speedup'][batch]:.2f}x the reference |"
        )
    return rows


def verify_chart(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    q, t = result["quality"], result["gate"]["thresholds"]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    _bar_with_limit(
        axes[0],
        "perplexity change (%)",
        100 * q["perplexity_change"],
        100 * t["max_ppl_increase"],
        higher_is_better=False,
    )
    _bar_with_limit(
        axes[1], "top-1 agreement", q["top1_agreement"], t["min_top1"], higher_is_better=True
    )
    if speed := result.get("speed"):
        batches = list(speed["reference"]["decode_tokens_per_s"])
        ref = [speed["reference"]["decode_tokens_per_s"][b] for b in batches]
        cand = [speed["candidate"]["decode_tokens_per_s"][b] for b in batches]
        x = range(len(batches))
        axes[2].bar([i - 0.2 for i in x], ref, 0.4, label="fp32 reference", color="#999999")
        axes[2].bar([i + 0.2 for i in x], cand, 0.4, label=result["variant"], color="#3a7dc9")
        axes[2].set_xticks(list(x), [f"batch {b}" for b in batches])
        axes[2].set_title("decode tokens/s")
        axes[2].legend(fontsize=8)
    else:
        axes[2].axis("off")
    status = result["gate"]["status"]
    fig.suptitle(
        f"{result['variant']}: gate {STATUS_MARK[status]}",
        color="#1a7f37" if status == "passed" else "#cf222e",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _bar_with_limit(ax, title: str, value: float, limit: float, higher_is_better: bool) -> None:
    ok = value >= limit if higher_is_better else value <= limit
    ax.bar([0], [value], color="#1a7f37" if ok else "#cf222e", width=0.5)
    ax.axhline(limit, color="black", linestyle="--", linewidth=1, label=f"limit {limit:g}")
    ax.set_xticks([])
    ax.set_title(title)
    ax.legend(fontsize=8)


def summary_markdown(rows: list[dict], recommended: str | None, command: str) -> str:
    lines = [
        "# Optimized variants",
        "",
        f"Made by `{command}`. Quality is measured against the fp32 merged model "
        "(teacher-forced on the validation examples); speed is greedy decoding in this "
        "process's own measurement, each model in a fresh process.",
        "",
        "| variant | backend | size MB | decode tok/s b1 | b8 | speed-up b1 | ppl change "
        "| top-1 agree | mean KL | task acc. | gate |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['variant']}{' (recommended)' if row['variant'] == recommended else ''} "
            f"| {row['backend']} | {row['size_mb']:.0f} | {_num(row['decode_b1'], '.1f')} "
            f"| {_num(row['decode_b8'], '.1f')} | {_num(row['speedup_b1'], '.2f', 'x')} "
            f"| {_num(row['ppl_change'], '+.2%')} | {_num(row['top1'], '.4f')} "
            f"| {_num(row['mean_kl'], '.4f')} | {_num(row['accuracy'], '.3f')} "
            f"| {STATUS_MARK.get(row['gate'], row['gate'])} |"
        )
    failed = [r for r in rows if r["gate"] == "failed"]
    if failed:
        lines += ["", "Failed the gate (not served):", ""]
        lines += [f"- {r['variant']}: {'; '.join(r['failures'])}" for r in failed]
    return "\n".join(lines) + "\n"


def _num(value, spec: str, suffix: str = "") -> str:
    return "–" if value is None else f"{value:{spec}}{suffix}"


def summary_chart(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    names = [r["variant"] for r in rows]
    colors = [{"passed": "#1a7f37", "failed": "#cf222e"}.get(r["gate"], "#999999") for r in rows]
    axes[0].barh(names, [r["decode_b1"] or 0 for r in rows], color=colors)
    axes[0].set_title("decode tokens/s, batch 1 (green: passed the gate)")
    axes[0].invert_yaxis()
    axes[1].barh(names, [100 * (r["ppl_change"] or 0) for r in rows], color=colors)
    axes[1].set_title("perplexity change vs fp32 (%)")
    axes[1].invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
