"""Build an argparse CLI from a table of plain functions, their signatures and docstrings.

The command table maps names to functions (or to `Group`s of further commands). For each
function:
- a positional parameter without a default becomes a positional argument (`FILE`);
- a keyword-only parameter becomes an option spelt with dashes (`model_dir` -> `--model-dir`);
- `bool` becomes `--flag/--no-flag`, `list[X]` a repeatable option (`--adapter a=1 --adapter b=2`
  or `--adapter a=1 b=2`), `Literal[...]` a choice, `X | None` an optional X, and a union such
  as `int | Literal["auto"]` accepts either;
- a parameter whose type is a dataclass is flattened into one option per field, and the dataclass
  is built (running its own validation) before the function is called;
- a parameter whose type is a pydantic model (e.g. pydantic-settings `Settings`) is flattened the
  same way, help from each field's `description`; only the options given on the command line
  are passed to it, so its other sources (environment, config file) fill in the rest. Fields
  marked `json_schema_extra={"cli": False}` (secrets) get no option;
- help text comes from the Google-style docstring (`Args:` for parameters; attribute docstrings
  for dataclass fields), so help and code can't drift apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, NamedTuple

import docstring_parser

from tuneloop.errors import UsageError

FUNC_KEY = "_tuneloop_function"


class Group(NamedTuple):
    """A command with subcommands, e.g. `tuneloop data check|prepare`."""

    help: str
    commands: dict[str, Callable | Group]


def build_parser(
    prog: str, description: str, table: dict[str, Callable | Group], *, epilog: str = ""
) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=description, epilog=epilog, formatter_class=_Formatter
    )
    _add_commands(parser, table)
    return parser


def call_parsed(args: argparse.Namespace) -> Any:
    """Call the function chosen on the command line with the parsed values."""
    func = getattr(args, FUNC_KEY)
    kwargs = {}
    for param in inspect.signature(func).parameters.values():
        hint = _hints(func)[param.name]
        if _is_dataclass_type(hint):
            kwargs[param.name] = _build_dataclass(hint, args, prefix=param.name)
        elif _is_pydantic_model(hint):
            kwargs[param.name] = _build_model(hint, args)
        else:
            kwargs[param.name] = getattr(args, param.name)
    return func(**kwargs)


def _add_commands(parser: argparse.ArgumentParser, table: dict[str, Callable | Group]) -> None:
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name, target in table.items():
        if isinstance(target, Group):
            sub = subparsers.add_parser(
                name,
                help=_escape(target.help),
                description=target.help,
                formatter_class=_Formatter,
            )
            _add_commands(sub, target.commands)
            sub.set_defaults(**{FUNC_KEY: _help_printer(sub)})
        else:
            doc = docstring_parser.parse(inspect.getdoc(target) or "")
            sub = subparsers.add_parser(
                name,
                help=_escape(doc.short_description),
                description=_join(doc.short_description, doc.long_description),
                formatter_class=_Formatter,
            )
            _add_function_arguments(sub, target, doc)
            sub.set_defaults(**{FUNC_KEY: target})
        sub.add_argument("--debug", action="store_true", help="show full tracebacks on errors")


def _help_printer(parser: argparse.ArgumentParser) -> Callable[[], int]:
    def print_help() -> int:
        parser.print_help()
        return 2

    return print_help


def _add_function_arguments(parser, func: Callable, doc) -> None:
    param_help = {p.arg_name: p.description for p in doc.params}
    hints = _hints(func)
    for param in inspect.signature(func).parameters.values():
        hint = hints[param.name]
        if _is_dataclass_type(hint):
            group = parser.add_argument_group(param_help.get(param.name) or param.name)
            _add_dataclass_arguments(group, hint, prefix=param.name)
        elif _is_pydantic_model(hint):
            _add_model_arguments(parser, hint)
        elif param.kind is inspect.Parameter.KEYWORD_ONLY:
            _add_option(parser, param.name, hint, param.default, param_help.get(param.name))
        elif param.default is inspect.Parameter.empty:
            parser.add_argument(
                param.name,
                metavar=param.name.upper(),
                type=_converter(hint),
                help=_escape(param_help.get(param.name)),
            )
        else:
            raise TypeError(f"{func.__name__}: make '{param.name}' keyword-only to get an option")


def _add_option(
    parser, name: str, hint, default, help_text: str | None, dest: str | None = None
) -> None:
    flag = "--" + name.replace("_", "-")
    required = default is inspect.Parameter.empty or default is dataclasses.MISSING
    kwargs: dict[str, Any] = {"dest": dest or name, "help": help_text or ""}
    if required:
        kwargs["required"] = True
    else:
        kwargs["default"] = default
        if default not in (None, False, []):
            kwargs["help"] += f" (default: {default})"
    kwargs["help"] = _escape(kwargs["help"])
    inner = _strip_optional(hint)
    if inner is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif typing.get_origin(inner) in (list, tuple):
        (item,) = typing.get_args(inner)[:1]
        kwargs.update(
            action="extend", nargs="+", type=_converter(item), metavar=_metavar(name, item)
        )
    else:
        kwargs.update(type=_converter(inner), metavar=_metavar(name, inner))
        if typing.get_origin(inner) is Literal:
            kwargs.pop("metavar")  # argparse shows {a,b,c} from the choices
            kwargs["choices"] = typing.get_args(inner)
    parser.add_argument(flag, **kwargs)


def _add_dataclass_arguments(group, cls: type, prefix: str) -> None:
    field_help = {p.arg_name: p.description for p in docstring_parser.parse_from_object(cls).params}
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        default = field.default
        if default is dataclasses.MISSING and field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        _add_option(
            group,
            field.name,
            hints[field.name],
            default,
            field_help.get(field.name),
            dest=f"{prefix}.{field.name}",
        )


def _build_dataclass(cls: type, args: argparse.Namespace, prefix: str):
    values = {
        f.name: getattr(args, f"{prefix}.{f.name}") for f in dataclasses.fields(cls) if f.init
    }
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:
        raise UsageError(str(exc)) from exc


def _add_model_arguments(parser, cls: type) -> None:
    env_prefix = cls.model_config.get("env_prefix", "")
    for name, field in cls.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if extra.get("cli") is False:
            continue
        help_text = field.description or ""
        default = field.get_default(call_default_factory=True)
        if default not in (None, False, [], ""):
            help_text += f" (default: {default})"
        if env_prefix:
            help_text += f" [env {env_prefix}{name.upper()}]"
        # default None: an option that was not given must not override the other sources
        _add_option(parser, name, field.annotation, None, help_text)


def _build_model(cls: type, args: argparse.Namespace):
    from pydantic import ValidationError

    given = {
        name: getattr(args, name)
        for name in cls.model_fields
        if getattr(args, name, None) is not None
    }
    try:
        return cls(**given)
    except ValidationError as exc:
        raise UsageError("; ".join(_problem(e) for e in exc.errors())) from exc


def _problem(error: dict) -> str:
    where = ".".join(map(str, error["loc"])) or "settings"
    return f"{where}: {error['msg'].removeprefix('Value error, ')}"


def _converter(hint) -> Callable[[str], Any]:
    """A function turning the command-line string into a value of type `hint`."""
    hint = _strip_optional(hint)
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        return lambda text: _literal(text, choices)
    if _is_union(hint):
        members = [_converter(member) for member in typing.get_args(hint)]
        return lambda text: _first_that_parses(text, members, hint)
    if hint in (str, int, float, Path):
        return hint
    if hint is Any or hint is inspect.Parameter.empty:
        return str
    raise TypeError(f"no command-line converter for type {hint!r}")


def _literal(text: str, choices: tuple) -> Any:
    for choice in choices:
        if str(choice) == text:
            return choice
    allowed = ", ".join(repr(str(c)) for c in choices)
    raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {allowed})")


def _first_that_parses(text: str, converters, hint) -> Any:
    for convert in converters:
        try:
            return convert(text)
        except (ValueError, TypeError, argparse.ArgumentTypeError):
            continue
    raise argparse.ArgumentTypeError(f"{text!r} is not a valid {_type_name(hint)}")


def _type_name(hint) -> str:
    if typing.get_origin(hint) is Literal:
        return " or ".join(repr(c) for c in typing.get_args(hint))
    if _is_union(hint):
        return " or ".join(_type_name(m) for m in typing.get_args(hint))
    return getattr(hint, "__name__", str(hint))


def _metavar(name: str, hint) -> str:
    hint = _strip_optional(hint)
    if hint is Path:
        return "DIR" if name.endswith("dir") or name == "out" else "FILE"
    if _is_union(hint) or typing.get_origin(hint) is Literal:
        return "{" + ",".join(_type_name(m).strip("'") for m in typing.get_args(hint)) + "}"
    return name.upper().replace("-", "_")


def _strip_optional(hint):
    if _is_union(hint):
        members = [m for m in typing.get_args(hint) if m is not type(None)]
        if len(members) == 1:
            return members[0]
        return typing.Union[tuple(members)]  # noqa: UP007 - built from a runtime tuple
    return hint


def _is_union(hint) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _is_dataclass_type(hint) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def _is_pydantic_model(hint) -> bool:
    return (
        isinstance(hint, type) and hasattr(hint, "model_fields") and hasattr(hint, "model_config")
    )


def _hints(func: Callable) -> dict[str, Any]:
    hints = typing.get_type_hints(func)
    return {name: hints.get(name, str) for name in inspect.signature(func).parameters}


def _escape(text: str | None) -> str | None:
    """argparse %-formats help strings; a literal % in a docstring must not crash --help."""
    return text.replace("%", "%%") if text else text


def _join(*parts: str | None) -> str:
    return "\n\n".join(p for p in parts if p)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keep docstring paragraphs as written; widen the option column a little."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)
