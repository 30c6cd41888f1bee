"""The command table, its help and its error handling."""

from __future__ import annotations

import inspect
import subprocess
import sys

import docstring_parser
import pytest

from tuneloop import cli
from tuneloop.cli_builder import Group


def leaves(table, prefix=()):
    for name, target in table.items():
        if isinstance(target, Group):
            yield from leaves(target.commands, (*prefix, name))
        else:
            yield (*prefix, name), target


def test_every_command_is_a_documented_function():
    for path, func in leaves(cli.COMMANDS):
        doc = docstring_parser.parse(inspect.getdoc(func) or "")
        assert doc.short_description, f"`tuneloop {' '.join(path)}` has no docstring"
        documented = {p.arg_name for p in doc.params}
        for name in inspect.signature(func).parameters:
            assert name in documented, f"`tuneloop {' '.join(path)}`: parameter {name} has no help"


def test_design_spellings_parse():
    """The command spellings in DESIGN.md that dashboards, scripts and docs rely on."""
    parser = cli.make_parser()
    cases = {
        "data check f.jsonl --base b": {"file": "f.jsonl", "base": "b"},
        "data prepare f.jsonl --out d": {"out": "d"},
        "train --data f --out d --base b --method lora --val v": {"method": "lora", "val": "v"},
        "eval --adapter a --data f --base b": {"adapter": "a"},
        "optimize all --adapter a --out d": {"adapter": "a"},
        "serve --base b --adapter x=1 --adapter y=2 --model-dir m --host h --port 9": {
            "adapter": ["x=1", "y=2"],
            "model_dir": "m",
            "host": "h",
            "port": 9,
        },
        "serve --adapter x=1 y=2": {"adapter": ["x=1", "y=2"]},
    }
    for line, expected in cases.items():
        args = vars(parser.parse_args(line.split()))
        for key, value in expected.items():
            assert str(args[key]) == str(value), f"{line}: {key}={args[key]!r}"


@pytest.mark.parametrize(
    "argv",
    [[], ["data"], ["optimize"], ["monitor"]]
    + [[*path, "--help"] for path, _ in leaves(cli.COMMANDS)],
)
def test_help_on_every_level(argv, capsys):
    try:
        code = cli.main(argv or ["--help"])
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr().out
    assert code in (0, 2)
    assert "usage: tuneloop" in out


def test_expected_error_is_one_line_with_its_exit_code(capsys):
    code = cli.main(["train", "--data", "missing.jsonl", "--out", "y"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "missing.jsonl: no such file" in err and "Traceback" not in err


def test_unexpected_error_is_one_line_unless_debug(capsys, monkeypatch):
    def broken(*, json: bool = False) -> int:
        """Fail."""
        raise RuntimeError("boom")

    monkeypatch.setitem(cli.COMMANDS, "doctor", broken)
    assert cli.main(["doctor"]) == 1
    err = capsys.readouterr().err
    assert "RuntimeError: boom" in err and "--debug" in err and err.count("\n") == 1
    with pytest.raises(RuntimeError):
        cli.main(["doctor", "--debug"])


def test_bad_option_value_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["serve", "--port", "eighty"])
    assert exc.value.code == 2
    assert "--port: invalid int value: 'eighty'" in capsys.readouterr().err


def test_demo_path_prints_the_shipped_file(capsys):
    assert cli.main(["data", "demo-path"]) == 0
    path = capsys.readouterr().out.strip()
    assert path.endswith("support_triage.jsonl")
    with open(path, encoding="utf-8") as f:
        assert f.readline().startswith('{"messages"')


def test_python_dash_m_runs_the_cli():
    result = subprocess.run(
        [sys.executable, "-m", "tuneloop", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith("tuneloop ")
