"""Options built from signatures: types, repeatable lists, flags, dataclasses and their checks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from tuneloop.cli_builder import Group, build_parser, call_parsed
from tuneloop.errors import UsageError


@dataclass
class Hyper:
    lr: float | Literal["auto"] = "auto"
    """learning rate, or auto"""
    rank: int = 16
    """LoRA rank"""

    def __post_init__(self):
        if self.rank <= 0:
            raise ValueError(f"--rank must be positive, got {self.rank}")


def command(
    file: Path,
    *,
    tags: list[str] | None = None,
    verbose: bool = False,
    mode: Literal["a", "b"] = "a",
    hyper: Hyper,
) -> dict:
    """Do a thing.

    Longer text.

    Args:
        file: the input.
        tags: labels; repeatable.
        verbose: talk more.
        mode: which mode.
        hyper: hyperparameters.
    """
    return {"file": file, "tags": tags, "verbose": verbose, "mode": mode, "hyper": hyper}


def run(*argv: str):
    parser = build_parser("prog", "test", {"group": Group("a group", {"do": command})})
    return call_parsed(parser.parse_args(["group", "do", *argv]))


def test_types_and_defaults():
    result = run("in.jsonl")
    assert result == {
        "file": Path("in.jsonl"),
        "tags": None,
        "verbose": False,
        "mode": "a",
        "hyper": Hyper(),
    }


def test_repeatable_list_and_flags():
    result = run("f", "--tags", "x", "y", "--tags", "z", "--verbose", "--mode", "b")
    assert result["tags"] == ["x", "y", "z"] and result["verbose"] and result["mode"] == "b"
    assert run("f", "--no-verbose")["verbose"] is False


def test_union_with_literal():
    assert run("f", "--lr", "3e-4").get("hyper").lr == 3e-4
    assert run("f", "--lr", "auto").get("hyper").lr == "auto"
    with pytest.raises(SystemExit):
        run("f", "--lr", "fast")


def test_dataclass_validation_becomes_usage_error():
    assert run("f", "--rank", "8")["hyper"].rank == 8
    with pytest.raises(UsageError, match="--rank must be positive, got 0"):
        run("f", "--rank", "0")


def test_invalid_choice_exits(capsys):
    with pytest.raises(SystemExit):
        run("f", "--mode", "c")
    assert "invalid choice: 'c'" in capsys.readouterr().err


def test_help_uses_docstrings(capsys):
    with pytest.raises(SystemExit):
        run("--help")
    out = capsys.readouterr().out
    for text in ("Do a thing.", "Longer text.", "labels; repeatable.", "LoRA rank", "--no-verbose"):
        assert text in out


def test_percent_in_help_is_literal(capsys):
    def share(*, top: float = 0.5) -> None:
        """Keep the top 50% of rows.

        Args:
            top: share of rows to keep (0.5 = 50%).
        """

    parser = build_parser("prog", "test", {"share": share})
    with pytest.raises(SystemExit):
        parser.parse_args(["share", "--help"])
    out = capsys.readouterr().out
    assert "Keep the top 50% of rows." in out and "(0.5 = 50%)" in out
