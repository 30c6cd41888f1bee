"""`tuneloop data prepare`: cleaning, duplicates, stratified splits, leakage, folds, report."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tuneloop import cli
from tuneloop.train.cleaning import clean_text
from tuneloop.train.dedup import find_duplicates
from tuneloop.train.split import k_folds, leaked, split_indices

TOPICS = {
    "billing": "I was charged twice for my order and want the extra payment refunded",
    "shipping": "My parcel has not arrived and the tracking page stopped updating last week",
    "account": "I cannot log in because the password reset email never reaches my inbox",
}
WORDS = ["red", "green", "blue", "amber", "violet", "silver", "golden", "orange", "purple", "teal"]


def example(text: str, label: str) -> dict:
    answer = json.dumps({"category": label, "reply": f"About your {label} question."})
    return {
        "messages": [
            {"role": "user", "content": text},
            {"role": "assistant", "content": answer},
        ]
    }


def distinct_examples(n_per_label: int) -> list[dict]:
    out = []
    for label, text in TOPICS.items():
        for i in range(n_per_label):
            a, b, c = WORDS[i % 10], WORDS[(i // 10) % 10], WORDS[(i * 7 + 3) % 10]
            out.append(
                example(f"Ticket {i} {a} {b} {c}: {label} matter {i * 13}. {text[i % 9 :]}", label)
            )
    return out


def write_jsonl(path, records) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_clean_text_normalizes_without_touching_indentation():
    raw = "Cafe\u0301\u00a0bill\u200b\r\n    indented   code  \x07\n\n\n\n\nend  "
    assert clean_text(raw) == "Café bill\n    indented   code\n\n\nend"


def test_near_duplicates_are_found_and_distinct_texts_kept():
    base = "where is my parcel it was due on monday and the tracking shows nothing since friday"
    examples = [
        example(base, "shipping"),
        example(base + " please", "shipping"),  # near duplicate of 0
        example(base.upper(), "shipping"),  # exact duplicate after case folding
        example("please delete my account and every piece of data you hold on me", "account"),
    ]
    removed, _ = find_duplicates(examples, near_threshold=0.8)
    assert removed == {1: ("near_duplicate", 0), 2: ("exact_duplicate", 0)}
    removed, _ = find_duplicates(examples, near_threshold=None)
    assert removed == {2: ("exact_duplicate", 0)}


def test_leakage_removes_held_out_examples_that_repeat_training_ones():
    examples = [example(f"{TOPICS['billing']} order {i} {WORDS[i]}", "billing") for i in range(6)]
    examples.append(
        example("a completely different question about changing my username", "account")
    )
    _, signatures = find_duplicates(examples, None)
    found = leaked(train=[0, 1, 2], held_out=[3, 6], signatures=signatures, threshold=0.6)
    assert set(found) == {3} and found[3] in (0, 1, 2)


def test_split_is_stratified_and_folds_cover_everything():
    labels = ["a"] * 50 + ["b"] * 30 + ["c"] * 20
    splits = split_indices(100, val=0.1, test=0.2, seed=1, labels=labels)
    assert sorted(i for s in splits.values() for i in s) == list(range(100))
    assert Counter(labels[i] for i in splits["test"]) == {"a": 10, "b": 6, "c": 4}
    assert Counter(labels[i] for i in splits["val"]) == {"a": 5, "b": 3, "c": 2}
    folds = k_folds(range(100), 4, seed=1, labels=labels)
    assert sorted(i for _, val in folds for i in val) == list(range(100))
    assert all(not set(train) & set(val) for train, val in folds)


def test_prepare_writes_splits_report_and_every_reject(tmp_path, tiny_model_dir, capsys):
    records = distinct_examples(20)
    records.append(records[0])  # exact duplicate
    records.append(
        {"messages": [{"role": "user", "content": "\u200b \x07"}, records[1]["messages"][1]]}
    )
    lines = [json.dumps(r) for r in records] + ["{broken"]
    source = tmp_path / "data.jsonl"
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "prepared"
    code = cli.main(
        [
            "data",
            "prepare",
            str(source),
            "--out",
            str(out),
            "--base",
            str(tiny_model_dir),
            "--label-field",
            "category",
            "--val-fraction",
            "0.2",
            "--test-fraction",
            "0.2",
            "--folds",
            "3",
        ]  # fmt: skip
    )
    assert code == 0
    report = json.loads((out / "data_report.json").read_text())
    assert report["removed"]["exact_duplicate"] == 1
    assert report["removed"]["invalid:not_json"] == 1
    assert sum(report["removed"].values()) == len(read_jsonl(out / "rejects.jsonl"))
    kept = sum(len(read_jsonl(out / f"{s}.jsonl")) for s in ("train", "val", "test"))
    assert kept + sum(report["removed"].values()) == len(lines)  # nothing silently dropped
    for split in ("val", "test"):
        labels = Counter(
            json.loads(r["messages"][1]["content"])["category"]
            for r in read_jsonl(out / f"{split}.jsonl")
        )
        assert set(labels) == set(TOPICS) and max(labels.values()) - min(labels.values()) <= 1
    assert (out / "lengths.png").stat().st_size > 1000
    assert "## What was removed or changed" in (out / "data_report.md").read_text()
    assert len(list((out / "folds").iterdir())) == 3
    rejects = {r["reason"]: r for r in read_jsonl(out / "rejects.jsonl")}
    assert rejects["exact_duplicate"]["line"] == 61 and rejects["invalid:not_json"]["line"] == 63


def test_overlong_examples_are_truncated_or_dropped(tmp_path, tiny_model_dir):
    records = distinct_examples(5)
    records[0]["messages"][0]["content"] += " filler" * 300
    source = tmp_path / "data.jsonl"
    write_jsonl(source, records)
    for mode, expect_removed in (("drop", 1), ("truncate", 0)):
        out = tmp_path / mode
        args = ["data", "prepare", str(source), "--out", str(out), "--base", str(tiny_model_dir)]
        assert cli.main([*args, "--max-tokens", "150", "--overlong", mode]) == 0
        report = json.loads((out / "data_report.json").read_text())
        assert report["removed"].get("over_token_limit", 0) == expect_removed
        assert report["counts"]["truncated"] == 1 - expect_removed
        assert max(s["tokens"]["max"] for s in report["splits"].values()) <= 150


@pytest.mark.parametrize(
    "option",
    [
        ["--val-fraction", "1.5"],
        ["--folds", "1"],
        ["--val-fraction", "0.5", "--test-fraction", "0.45"],
    ],
)
def test_bad_prepare_options_are_usage_errors(tmp_path, option, capsys):
    assert cli.main(["data", "prepare", "x.jsonl", "--out", str(tmp_path), *option]) == 2
