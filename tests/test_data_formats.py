"""Reading the three data formats from JSONL and CSV, and locating each problem."""

from __future__ import annotations

import json

import pytest

from tuneloop.data_formats import parse_file, prompt_and_completion, read_examples
from tuneloop.demo import DEMO_DATA
from tuneloop.errors import DataError


def write_jsonl(path, records):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


CHAT = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


def test_demo_data_reads_as_chat():
    fmt, examples, problems = parse_file(DEMO_DATA)
    assert fmt == "chat" and not problems and len(examples) >= 1000


def test_prompt_completion_and_alpaca_become_chat(tmp_path):
    pc = write_jsonl(tmp_path / "pc.jsonl", [{"prompt": "2+2?", "completion": "4"}])
    alpaca = write_jsonl(
        tmp_path / "a.jsonl", [{"instruction": "Translate", "input": "chat", "output": "cat"}]
    )
    assert read_examples(pc)[0]["messages"][1] == {"role": "assistant", "content": "4"}
    assert read_examples(alpaca)[0]["messages"][0]["content"] == "Translate\n\nchat"


def test_csv_with_multiline_field_keeps_line_numbers(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('prompt,completion\n"line one\nline two",ok\n"",empty\n')
    fmt, examples, problems = parse_file(path)
    assert fmt == "prompt_completion" and len(examples) == 1
    assert [(p.kind, p.line, p.field) for p in problems] == [("empty_content", 4, "prompt")]


@pytest.mark.parametrize(
    ("record", "kind", "field"),
    [
        ("{not json", "not_json", ""),
        ([1, 2], "not_json", ""),
        ({"text": "x"}, "unknown_format", ""),
        ({**CHAT, "extra": 1}, "unknown_key", "extra"),
        ({"messages": "hi"}, "bad_type", "messages"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "unknown_role", "messages[0].role"),
        (
            {"messages": [{"role": "user", "content": " "}, {"role": "assistant", "content": "a"}]},
            "empty_content",
            "messages[0].content",
        ),
        ({"messages": [{"role": "user", "content": "q"}]}, "no_assistant", "messages"),
        (
            {"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]},
            "role_order",
            "messages[0].role",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": "a", "weight": 2},
                ]
            },
            "bad_weight",
            "messages[1].weight",
        ),
    ],
)
def test_each_problem_has_kind_line_and_field(tmp_path, record, kind, field):
    path = write_jsonl(tmp_path / "d.jsonl", [CHAT, record])
    _, examples, problems = parse_file(path)
    assert [(p.kind, p.line, p.field) for p in problems] == [(kind, 2, field)]
    with pytest.raises(DataError, match=r"d\.jsonl:2:"):
        read_examples(path)


def test_mixed_formats_name_the_line(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [CHAT, {"prompt": "p", "completion": "c"}, CHAT])
    _, examples, problems = parse_file(path)
    assert len(examples) == 2
    assert problems[0].kind == "mixed_format" and problems[0].line == 2
    assert "prompt_completion record in a chat file" in problems[0].message


def test_invalid_utf8_is_a_problem_not_a_crash(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(json.dumps(CHAT).encode() + b"\n" + b'{"prompt": "\xff"}\n')
    _, _, problems = parse_file(path)
    assert problems[0].kind == "not_json" and "UTF-8" in problems[0].message


def test_prompt_and_completion_split():
    example = {
        "messages": [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a", "weight": 1},
        ]
    }
    prompt, completion = prompt_and_completion(example)
    assert [m["role"] for m in prompt] == ["system", "user"] and completion == "a"
