"""Malformed input to `tuneloop data check` and `data prepare`: a clear message naming the
file, a non-zero exit, no traceback, and nothing written (not even part of an output)."""

from __future__ import annotations

import json

import pytest

from tuneloop import cli

GOOD = json.dumps(
    {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
)
MALFORMED = {
    "missing.jsonl": None,
    "empty.jsonl": b"",
    "blank-lines.jsonl": b"\n\n  \n",
    "invalid-utf8.jsonl": b'{"prompt": "caf\xe9", "completion": "x"}\n' * 12,
    "binary.jsonl": bytes(range(256)) * 8,
    "not-json.jsonl": b"this is not json\n" * 12,
    "json-but-not-objects.jsonl": b"[1, 2]\n42\n" * 6,
    "mixed-formats.jsonl": (GOOD + "\n" + '{"prompt": "p", "completion": "c"}\n').encode() * 6,
    "no-columns.csv": b"a,b\n1,2\n" * 6,
    "a-folder.jsonl": "folder",
    "truncated.jsonl": (GOOD + "\n").encode() * 11 + GOOD[:20].encode(),
}


def make(tmp_path, name):
    content = MALFORMED[name]
    path = tmp_path / "in" / name
    path.parent.mkdir(exist_ok=True)
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    return path


def files_under(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob("*"))


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_input_is_refused_clearly_and_nothing_is_written(
    tmp_path, tiny_model_dir, capsys, monkeypatch, name
):
    path = make(tmp_path, name)
    monkeypatch.chdir(tmp_path)
    before = files_under(tmp_path)
    base = ["--base", str(tiny_model_dir)]
    assert cli.main(["data", "check", str(path), *base]) != 0
    check = capsys.readouterr()
    out = tmp_path / "prepared"
    assert cli.main(["data", "prepare", str(path), "--out", str(out), *base]) != 0
    prepare = capsys.readouterr()
    for said in (check, prepare):
        text = said.out + said.err
        assert path.name in text, text
        assert "Traceback" not in text
    assert not out.exists()
    assert files_under(tmp_path) == before
