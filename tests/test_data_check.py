"""`tuneloop data check`: every problem kind with its line, statistics, exit codes, --json."""

from __future__ import annotations

import json

import pytest

from tuneloop import cli


def chat(user: str, answer: str = "fine") -> dict:
    return {
        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    }


def write_jsonl(path, records):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


GOOD = [chat(f"question number {i} about the weather") for i in range(12)]
BAD = {
    "not_json": "{this is not json",
    "missing_field": {"messages": []},
    "unknown_key": {**chat("x"), "extra": 1},
    "unknown_role": {"messages": [{"role": "bot", "content": "x"}]},
    "empty_content": chat("   "),
    "no_assistant": {"messages": [{"role": "user", "content": "q"}]},
    "role_order": {
        "messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]
    },
    "over_token_limit": chat("word " * 400),
}


def run_check(capsys, path, *extra):
    code = cli.main(["data", "check", str(path), *extra])
    return code, capsys.readouterr().out


@pytest.mark.parametrize("kind", list(BAD))
def test_each_error_kind_is_reported_with_its_line(tmp_path, capsys, tiny_model_dir, kind):
    records = GOOD[:5] + [BAD[kind]] + GOOD[5:]
    path = write_jsonl(tmp_path / "d.jsonl", records)
    code, out = run_check(capsys, path, "--base", str(tiny_model_dir), "--max-tokens", "200")
    assert code == 1
    assert f"{path}:6:" in out
    assert f"problems by kind: {kind} 1" in out
    code, out = run_check(
        capsys, path, "--base", str(tiny_model_dir), "--max-tokens", "200", "--json"
    )
    report = json.loads(out)
    assert [(p["kind"], p["line"]) for p in report["problems"]] == [(kind, 6)]
    assert report["problem_counts"] == {kind: 1} and report["ok"] is False


def test_clean_file_passes_with_statistics(tmp_path, capsys, tiny_model_dir):
    path = write_jsonl(tmp_path / "d.jsonl", GOOD * 5)
    code, out = run_check(capsys, path, "--base", str(tiny_model_dir), "--json", "--epochs", "2")
    report = json.loads(out)
    assert code == 0 and report["ok"]
    stats = report["stats"]
    assert stats["examples"] == 60
    tokens = stats["tokens_per_example"]
    assert tokens["min"] <= tokens["p5"] <= tokens["median"] <= tokens["p95"] <= tokens["max"]
    assert 0 < stats["assistant_tokens_per_example"]["max"] < tokens["min"]
    assert stats["estimated_training_tokens"] == stats["tokens_per_epoch"] * 2
    assert any("50" in w for w in report["warnings"]) is False  # 60 examples: no warning


def test_too_few_examples_is_an_error_and_few_a_warning(tmp_path, capsys, tiny_model_dir):
    code, out = run_check(
        capsys, write_jsonl(tmp_path / "a.jsonl", GOOD[:9]), "--base", str(tiny_model_dir)
    )
    assert code == 1 and "at least 10" in out
    code, out = run_check(
        capsys, write_jsonl(tmp_path / "b.jsonl", GOOD[:12]), "--base", str(tiny_model_dir)
    )
    assert code == 0 and "warning: only 12 usable examples" in out


def test_label_field_checks_answers(tmp_path, capsys, tiny_model_dir):
    labelled = [
        chat(f"q{i} about things", json.dumps({"category": "a" if i % 2 else "b"}))
        for i in range(12)
    ]
    path = write_jsonl(tmp_path / "d.jsonl", [*labelled, chat("q", "not json")])
    code, out = run_check(capsys, path, "--base", str(tiny_model_dir), "--label-field", "category")
    assert code == 1 and f"{path}:13: field messages[-1].content" in out
    assert "labels: " in out and "a 6" in out and "b 6" in out
