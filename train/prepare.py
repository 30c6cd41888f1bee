"""`tuneloop data prepare`: clean, deduplicate, split, check for leakage, report.

Steps, in order, each counting what it removes by reason (nothing is dropped silently; with a
rejects file every removed record is written out with its line, reason and detail):
1) read (records with format problems are rejected with their problem kind)
2) clean the text (see `cleaning`); examples left with an empty message are rejected
3) measure tokens with the base model's chat template; over-length examples are dropped or
   truncated (the longest non-assistant message is shortened; answers are never cut)
4) read the label, when a label field is given (examples without one are rejected)
5) remove exact duplicates, then near duplicates (see `dedup`)
6) split train/validation/test, stratified by label
7) remove validation/test examples that near-duplicate a training example (leakage)
8) optionally write k cross-validation folds of train+validation
9) write the splits, the report (Markdown, JSON, histogram) and the rejects
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tuneloop.data_formats import parse_file
from tuneloop.errors import DataError
from tuneloop.train.checks import MIN_EXAMPLES, distribution
from tuneloop.train.cleaning import clean_example, empty_message
from tuneloop.train.data_report import write_report
from tuneloop.train.dedup import find_duplicates
from tuneloop.train.encoding import encode
from tuneloop.train.labels import label_of
from tuneloop.train.options import PrepareOptions
from tuneloop.train.split import k_folds, leaked, split_indices

log = logging.getLogger(__name__)


@dataclass
class Record:
    line: int
    example: dict
    tokens: int = 0
    label: str | None = None


@dataclass
class Rejects:
    """Every removed record: line, reason, detail and the record (when it could be read)."""

    items: list[dict] = field(default_factory=list)

    def add(self, line: int, reason: str, detail: str, example: dict | None = None) -> None:
        self.items.append({"line": line, "reason": reason, "detail": detail, "example": example})

    def counts(self) -> dict[str, int]:
        return dict(Counter(item["reason"] for item in self.items).most_common())


def prepare(
    path: Path,
    out: Path,
    tokenizer,
    options: PrepareOptions,
    *,
    base: str,
    context: int,
    rejects_path: Path | None = None,
) -> dict:
    """Run every step and write the outputs; returns the report (also written as JSON)."""
    max_tokens = options.max_tokens or context
    rejects = Rejects()
    fmt, parsed, problems = parse_file(path)
    for problem in problems:
        rejects.add(problem.line, f"invalid:{problem.kind}", problem.message)
    records, counts = _clean_and_measure(parsed, tokenizer, options, max_tokens, rejects)
    records, signatures = _deduplicate(records, options, rejects)
    if len(records) < MIN_EXAMPLES:
        raise DataError(
            f"{path}: only {len(records)} examples left after cleaning and deduplication "
            f"(at least {MIN_EXAMPLES} needed); see `tuneloop data check {path}`"
        )
    splits = _split(records, signatures, options, rejects)
    out.mkdir(parents=True, exist_ok=True)
    for name, members in splits.items():
        write_jsonl(out / f"{name}.jsonl", [_with_source(r) for r in members])
    folds = _write_folds(out, splits, options) if options.folds else 0
    rejects_file = rejects_path or out / "rejects.jsonl"
    write_jsonl(rejects_file, rejects.items)
    report = {
        "input": str(path),
        "format": fmt,
        "base": base,
        "max_tokens": max_tokens,
        "overlong": options.overlong,
        "label_field": options.label_field,
        "seed": options.seed,
        "counts": {"records": len(parsed) + len(problems), "kept": len(records), **counts},
        "removed": rejects.counts(),
        "thresholds": {
            "near_duplicate": options.near_dup_threshold,
            "leakage": options.leakage_threshold,
        },
        "labels": dict(Counter(r.label for r in records if r.label).most_common()),
        "splits": {name: _split_summary(members) for name, members in splits.items()},
        "folds": folds,
        "rejects_file": str(rejects_file),
    }
    write_report(out, report)
    return report


def _clean_and_measure(parsed, tokenizer, options, max_tokens, rejects) -> tuple[list, dict]:
    records, cleaned, truncated = [], 0, 0
    for line, raw in parsed:
        example, changed = clean_example(raw)
        cleaned += changed
        if (empty := empty_message(example)) is not None:
            rejects.add(line, "empty_after_cleaning", f"messages[{empty}] is empty", raw)
            continue
        tokens = len(encode(tokenizer, example["messages"]))
        if tokens > max_tokens and options.overlong == "truncate":
            example, tokens = truncate_to_fit(tokenizer, example, max_tokens)
            truncated += tokens <= max_tokens
        if tokens > max_tokens:
            rejects.add(line, "over_token_limit", f"{tokens} tokens > {max_tokens}", raw)
            continue
        label = None
        if options.label_field:
            label = label_of(example, options.label_field)
            if label is None:
                rejects.add(line, "missing_label", f"no '{options.label_field}' label", raw)
                continue
        records.append(Record(line, example, tokens, label))
    return records, {"cleaned": cleaned, "truncated": truncated}


def truncate_to_fit(tokenizer, example: dict, max_tokens: int) -> tuple[dict, int]:
    """Shorten the longest non-assistant message (from its end) until the example fits."""
    messages = [dict(m) for m in example["messages"]]
    candidates = [i for i, m in enumerate(messages) if m["role"] != "assistant"]
    if not candidates:
        return example, len(encode(tokenizer, messages))
    target = max(candidates, key=lambda i: len(messages[i]["content"]))
    text = messages[target]["content"]
    lo, hi = 0, len(text)  # binary search on the number of characters kept
    while lo < hi:
        mid = (lo + hi + 1) // 2
        messages[target]["content"] = text[:mid]
        if len(encode(tokenizer, messages)) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    messages[target]["content"] = text[:lo].rstrip()
    if not messages[target]["content"]:
        return example, len(encode(tokenizer, example["messages"]))
    return {**example, "messages": messages}, len(encode(tokenizer, messages))


def _deduplicate(records: list[Record], options, rejects) -> tuple[list[Record], list]:
    """The records that are not duplicates, and their prompt signatures."""
    removed, signatures = find_duplicates([r.example for r in records], options.near_dup_threshold)
    for i, (reason, kept) in removed.items():
        detail = f"duplicates line {records[kept].line}"
        rejects.add(records[i].line, reason, detail, records[i].example)
    kept = [i for i in range(len(records)) if i not in removed]
    return [records[i] for i in kept], [signatures[i] for i in kept]


def _split(records: list[Record], signatures: list, options, rejects) -> dict[str, list[Record]]:
    labels = [r.label for r in records] if options.label_field else None
    index = split_indices(
        len(records),
        val=options.val_fraction,
        test=options.test_fraction,
        seed=options.seed,
        labels=labels,
    )
    held_out = index["val"] + index["test"]
    leaks = leaked(index["train"], held_out, signatures, options.leakage_threshold)
    for i, kept in leaks.items():
        split = "val" if i in set(index["val"]) else "test"
        rejects.add(
            records[i].line,
            f"leakage_{split}",
            f"near-duplicates training line {records[kept].line}",
            records[i].example,
        )
    return {name: [records[i] for i in idx if i not in leaks] for name, idx in index.items()}


def _write_folds(out: Path, splits: dict[str, list[Record]], options) -> int:
    pool = splits["train"] + splits["val"]
    labels = [r.label for r in pool] if options.label_field else None
    for k, (train_idx, val_idx) in enumerate(
        k_folds(range(len(pool)), options.folds, seed=options.seed, labels=labels)
    ):
        folder = out / "folds" / f"fold-{k}"
        folder.mkdir(parents=True, exist_ok=True)
        write_jsonl(folder / "train.jsonl", [_with_source(pool[i]) for i in train_idx])
        write_jsonl(folder / "val.jsonl", [_with_source(pool[i]) for i in val_idx])
    return options.folds


def _with_source(record: Record) -> dict:
    metadata = {**record.example.get("metadata", {})}
    metadata.setdefault("source_line", record.line)
    return {"messages": record.example["messages"], "metadata": metadata}


def _split_summary(members: list[Record]) -> dict:
    lengths = [r.tokens for r in members]
    return {
        "examples": len(members),
        "tokens": distribution(lengths),
        "labels": dict(sorted(Counter(r.label for r in members if r.label).items())),
        "lengths": lengths,
    }


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)
