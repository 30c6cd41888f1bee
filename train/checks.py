"""`tuneloop data check`: every problem of a data file, counted by kind, plus token statistics.

The format problems come from the shared reader (`tuneloop.data_formats`); this module adds
what needs the base model's tokenizer (the token limit, tokens per example, assistant tokens,
the estimated training tokens), optional label checks, and the verdict: errors make it fail,
fewer than `MIN_EXAMPLES` usable examples is an error, fewer than `FEW_EXAMPLES` a warning.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tuneloop.data_formats import DataProblem, parse_file
from tuneloop.train.auto import openai_epochs
from tuneloop.train.encoding import Encoded, encode
from tuneloop.train.labels import label_of

MIN_EXAMPLES = 10
FEW_EXAMPLES = 50


@dataclass
class CheckReport:
    """The result of checking one file (also its `--json` form)."""

    file: str
    format: str | None
    records: int
    usable: int
    max_tokens: int
    problems: list[DataProblem]
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """Whole-file errors (too few examples); per-record errors are in `problems`."""
    stats: dict = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.errors

    def counts_by_kind(self) -> dict[str, int]:
        return dict(Counter(p.kind for p in self.problems).most_common())

    def to_json(self) -> dict:
        data = asdict(self)
        data["ok"] = self.ok
        data["problem_counts"] = self.counts_by_kind()
        return data


def distribution(values: list[int]) -> dict[str, float]:
    """min / p5 / median / p95 / max / mean of a list of counts."""
    if not values:
        return {}
    data = np.asarray(values, dtype=float)
    q = np.quantile(data, [0, 0.05, 0.5, 0.95, 1])
    names = ("min", "p5", "median", "p95", "max")
    return {**{n: float(v) for n, v in zip(names, q, strict=True)}, "mean": float(data.mean())}


def check_file(
    path: Path,
    tokenizer,
    *,
    max_tokens: int,
    epochs: float | None = None,
    label_field: str | None = None,
    train_on_prompt: bool = False,
) -> tuple[CheckReport, list[tuple[int, dict, Encoded]]]:
    """Check a file; also return its usable examples as (line, example, encoding)."""
    fmt, examples, problems = parse_file(path)
    usable: list[tuple[int, dict, Encoded]] = []
    labels: Counter = Counter()
    for line, example in examples:
        encoded = encode(tokenizer, example["messages"], train_on_prompt=train_on_prompt)
        if len(encoded) > max_tokens:
            problems.append(
                DataProblem(
                    "over_token_limit",
                    line,
                    "messages",
                    f"{len(encoded)} tokens, over the limit of {max_tokens}",
                )
            )
            continue
        if label_field:
            label = label_of(example, label_field)
            if label is None:
                problems.append(_label_problem(line, label_field))
                continue
            labels[label] += 1
        usable.append((line, example, encoded))
    problems.sort(key=lambda p: p.line)
    report = CheckReport(
        file=str(path),
        format=fmt,
        records=len(examples) + sum(1 for p in problems if p.kind not in _EXAMPLE_KINDS),
        usable=len(usable),
        max_tokens=max_tokens,
        problems=problems,
        labels=dict(labels.most_common()),
    )
    _verdict(report)
    report.stats = _stats([enc for _, _, enc in usable], epochs)
    return report, usable


# Kinds found after an example was read (it is already counted in `examples`).
_EXAMPLE_KINDS = {"over_token_limit", "missing_label"}


def _label_problem(line: int, label_field: str) -> DataProblem:
    return DataProblem(
        "missing_label",
        line,
        "messages[-1].content",
        f"the last assistant message is not a JSON object with a '{label_field}' string",
    )


def _verdict(report: CheckReport) -> None:
    if report.usable < MIN_EXAMPLES:
        report.errors.append(
            f"only {report.usable} usable examples; at least {MIN_EXAMPLES} are needed to train"
        )
    elif report.usable < FEW_EXAMPLES:
        report.warnings.append(
            f"only {report.usable} usable examples; {FEW_EXAMPLES} or more usually train "
            "noticeably better"
        )
    if report.labels and min(report.labels.values()) * 10 < max(report.labels.values()):
        report.warnings.append(
            "labels are imbalanced more than 10:1 "
            f"({', '.join(f'{k}={v}' for k, v in report.labels.items())})"
        )


def _stats(encoded: list[Encoded], epochs: float | None) -> dict:
    if not encoded:
        return {}
    tokens = [len(e) for e in encoded]
    supervised = [e.supervised_tokens for e in encoded]
    choice = openai_epochs(len(encoded))
    n_epochs = epochs if epochs is not None else choice.value
    return {
        "examples": len(encoded),
        "tokens_per_example": distribution(tokens),
        "assistant_tokens_per_example": distribution(supervised),
        "tokens_per_epoch": int(sum(tokens)),
        "epochs": n_epochs,
        "epochs_reason": "as given" if epochs is not None else choice.reason,
        "estimated_training_tokens": int(sum(tokens) * n_epochs),
        "estimated_supervised_tokens": int(sum(supervised) * n_epochs),
    }


def format_report(report: CheckReport) -> str:
    """The human-readable report: problems with file:line and field, counts, statistics."""
    lines = [
        f"{report.file}: {report.format or 'unknown'} format, {report.records:,} records, "
        f"{report.usable:,} usable"
    ]
    if report.problems:
        lines.append(f"problems ({len(report.problems)}):")
        lines += [f"  {p.where(report.file)}" for p in report.problems]
        counts = ", ".join(f"{k} {v}" for k, v in report.counts_by_kind().items())
        lines.append(f"problems by kind: {counts}")
    lines += _format_stats(report)
    lines += [f"warning: {w}" for w in report.warnings]
    lines += [f"error: {e}" for e in report.errors]
    n_errors = len(report.problems) + len(report.errors)
    verdict = "OK" if report.ok else f"FAILED ({n_errors} error{'s' * (n_errors != 1)})"
    lines.append(f"result: {verdict}")
    return "\n".join(lines)


def _format_stats(report: CheckReport) -> list[str]:
    stats = report.stats
    if not stats:
        return []

    def dist(d: dict) -> str:
        return ", ".join(f"{k} {v:,.0f}" for k, v in d.items() if k != "mean")

    out = [
        f"tokens per example: {dist(stats['tokens_per_example'])} (limit {report.max_tokens:,})",
        f"assistant tokens per example: {dist(stats['assistant_tokens_per_example'])}",
        f"estimated training tokens: {stats['tokens_per_epoch']:,} per epoch x "
        f"{stats['epochs']:g} epochs = {stats['estimated_training_tokens']:,} "
        f"({stats['epochs_reason']})",
    ]
    if report.labels:
        out.append("labels: " + ", ".join(f"{k} {v}" for k, v in report.labels.items()))
    return out


def report_json(report: CheckReport) -> str:
    return json.dumps(report.to_json(), indent=2, ensure_ascii=False)
