"""Training-data formats: read JSONL or CSV, detect the format, normalize to chat messages.

Three formats are accepted, one per file:
- chat: `{"messages": [{"role": "system"|"user"|"assistant", "content": str, "weight": 0|1}]}`
  (OpenAI's fine-tuning format; `weight` 0 excludes an assistant turn from the loss);
- prompt/completion: `{"prompt": str, "completion": str}`;
- alpaca: `{"instruction": str, "input": str (optional), "output": str}`.
Any of them may carry a `metadata` object (ignored for training; usable as a group or label
source). Every record is normalized to the chat form. Problems are `DataProblem`s with a kind,
the line number and the field, so `tuneloop data check` can list them all and other commands
can stop at the first with a message that names it.
"""

from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tuneloop.errors import DataError

ROLES = ("system", "user", "assistant")
FORMAT_KEYS = {
    "chat": ({"messages"}, set()),
    "prompt_completion": ({"prompt", "completion"}, set()),
    "alpaca": ({"instruction", "output"}, {"input", "system"}),
}
OPTIONAL_KEYS = {"metadata"}
MESSAGE_KEYS = {"role", "content", "weight"}


@dataclass(frozen=True)
class DataProblem:
    """One problem in one record: what kind, where, and what to do."""

    kind: str
    """A short code counted in reports: not_json, unknown_format, mixed_format, missing_field,
    unknown_key, bad_type, unknown_role, empty_content, no_assistant, role_order, bad_weight,
    over_token_limit."""
    line: int
    field: str
    message: str

    def where(self, path: Path | str) -> str:
        field = f" field {self.field}:" if self.field else ""
        return f"{path}:{self.line}:{field} {self.message}"


class RecordError(ValueError):
    """Raised by `to_chat` for the first problem of a record."""

    def __init__(self, kind: str, field: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.field, self.message = kind, field, message


def iter_raw(path: Path) -> Iterator[tuple[int, dict | DataProblem]]:
    """Yield (line number, parsed object or problem) for each non-blank record of the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.suffix.lower() == ".csv":
        yield from _iter_csv(path)
    else:
        yield from _iter_jsonl(path)


def _iter_jsonl(path: Path) -> Iterator[tuple[int, dict | DataProblem]]:
    with path.open("rb") as f:
        for line_no, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                yield line_no, DataProblem("not_json", line_no, "", f"invalid UTF-8 ({exc.reason})")
                continue
            except json.JSONDecodeError as exc:
                yield line_no, DataProblem("not_json", line_no, "", f"not valid JSON ({exc.msg})")
                continue
            if not isinstance(value, dict):
                kind = type(value).__name__
                yield (
                    line_no,
                    DataProblem("not_json", line_no, "", f"expected an object, got {kind}"),
                )
                continue
            yield line_no, value


def _iter_csv(path: Path) -> Iterator[tuple[int, dict | DataProblem]]:
    with path.open(newline="", encoding="utf-8", errors="strict") as f:
        reader = csv.DictReader(f)
        start = 2  # the header is line 1
        try:
            for row in reader:
                line_no, start = start, reader.line_num + 1  # a quoted field may span lines
                if not any((v or "").strip() for v in row.values()):
                    continue
                yield line_no, _csv_row(row)
        except (UnicodeDecodeError, csv.Error) as exc:
            yield start, DataProblem("not_json", start, "", f"unreadable CSV ({exc})")


def _csv_row(row: dict) -> dict:
    record = {k.strip(): v for k, v in row.items() if k is not None}
    for key in ("messages", "metadata"):  # JSON-valued columns
        if isinstance(record.get(key), str) and record[key].strip():
            # Left as a string when invalid: to_chat then reports the wrong type with its field.
            with contextlib.suppress(json.JSONDecodeError):
                record[key] = json.loads(record[key])
    return {k: v for k, v in record.items() if v not in ("", None) or k in _all_format_keys()}


def _all_format_keys() -> set[str]:
    return {k for required, optional in FORMAT_KEYS.values() for k in required | optional}


def detect_format(record: dict) -> str | None:
    """The format whose required keys the record has, or None."""
    for name, (required, _) in FORMAT_KEYS.items():
        if required <= record.keys():
            return name
    return None


def to_chat(record: dict, fmt: str) -> dict:
    """Normalize one record of format `fmt` to `{"messages": [...], "metadata": {...}}`."""
    required, optional = FORMAT_KEYS[fmt]
    if missing := sorted(required - record.keys()):
        raise RecordError("missing_field", missing[0], f"missing '{missing[0]}' ({fmt} format)")
    if unknown := sorted(record.keys() - required - optional - OPTIONAL_KEYS):
        raise RecordError(
            "unknown_key", unknown[0], f"unknown key '{unknown[0]}' in a {fmt} record"
        )
    metadata = record.get("metadata", {})
    if not isinstance(metadata, dict):
        raise RecordError("bad_type", "metadata", "must be an object")
    if fmt == "chat":
        messages = _chat_messages(record["messages"])
    elif fmt == "prompt_completion":
        prompt = _text(record, "prompt")
        messages = [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": _text(record, "completion")},
        ]
    else:
        messages = _alpaca_messages(record)
    _check_turns(messages)
    return {"messages": messages, "metadata": metadata}


def _text(record: dict, key: str, field: str | None = None) -> str:
    value = record.get(key)
    if not isinstance(value, str):
        raise RecordError("bad_type", field or key, f"must be a string, got {type(value).__name__}")
    if not value.strip():
        raise RecordError("empty_content", field or key, "is empty")
    return value


def _alpaca_messages(record: dict) -> list[dict]:
    instruction = _text(record, "instruction")
    extra = record.get("input") or ""
    if not isinstance(extra, str):
        raise RecordError("bad_type", "input", f"must be a string, got {type(extra).__name__}")
    user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    messages = [
        {"role": "user", "content": user},
        {"role": "assistant", "content": _text(record, "output")},
    ]
    if record.get("system"):
        messages.insert(0, {"role": "system", "content": _text(record, "system")})
    return messages


def _chat_messages(raw) -> list[dict]:
    if not isinstance(raw, list):
        raise RecordError("bad_type", "messages", f"must be a list, got {type(raw).__name__}")
    if not raw:
        raise RecordError("missing_field", "messages", "is an empty list")
    messages = []
    for i, message in enumerate(raw):
        field = f"messages[{i}]"
        if not isinstance(message, dict):
            raise RecordError("bad_type", field, f"must be an object, got {type(message).__name__}")
        if unknown := sorted(message.keys() - MESSAGE_KEYS):
            raise RecordError("unknown_key", f"{field}.{unknown[0]}", f"unknown key '{unknown[0]}'")
        role = message.get("role")
        if role not in ROLES:
            raise RecordError(
                "unknown_role", f"{field}.role", f"role {role!r} is not one of {', '.join(ROLES)}"
            )
        content = _text(message, "content", f"{field}.content")
        normalized = {"role": role, "content": content}
        if "weight" in message:
            if message["weight"] not in (0, 1) or isinstance(message["weight"], bool):
                raise RecordError("bad_weight", f"{field}.weight", "must be 0 or 1")
            if role != "assistant":
                raise RecordError(
                    "bad_weight", f"{field}.weight", "only assistant turns take a weight"
                )
            normalized["weight"] = message["weight"]
        messages.append(normalized)
    return messages


def _check_turns(messages: list[dict]) -> None:
    """System first (optional), then user and assistant alternating, ending with the assistant."""
    roles = [m["role"] for m in messages]
    if "assistant" not in roles:
        raise RecordError("no_assistant", "messages", "has no assistant message to learn from")
    turns = roles[1:] if roles[0] == "system" else roles
    for i, role in enumerate(turns):
        expected = "user" if i % 2 == 0 else "assistant"
        if role != expected:
            index = i + (len(roles) - len(turns))
            raise RecordError(
                "role_order",
                f"messages[{index}].role",
                f"expected {expected} here, got {role} (turns must alternate "
                "user/assistant after an optional system message)",
            )
    if turns[-1] != "assistant":
        raise RecordError(
            "role_order",
            f"messages[{len(roles) - 1}].role",
            "the last message must be the assistant's",
        )


def parse_file(path: Path) -> tuple[str | None, list[tuple[int, dict]], list[DataProblem]]:
    """Read every record: (detected format, [(line, chat example)], [problems]).

    The file's format is the one of its first recognizable record; records of another format
    are `mixed_format` problems naming both formats.
    """
    fmt, examples, problems = None, [], []
    for line_no, raw in iter_raw(path):
        if isinstance(raw, DataProblem):
            problems.append(raw)
            continue
        detected = detect_format(raw)
        if detected is None:
            keys = ", ".join(sorted(raw)) or "none"
            problems.append(
                DataProblem(
                    "unknown_format",
                    line_no,
                    "",
                    f"keys ({keys}) match no format: need 'messages', 'prompt'+'completion', "
                    "or 'instruction'+'output'",
                )
            )
            continue
        fmt = fmt or detected
        if detected != fmt:
            problems.append(
                DataProblem(
                    "mixed_format",
                    line_no,
                    "",
                    f"{detected} record in a {fmt} file (one format per file)",
                )
            )
            continue
        try:
            examples.append((line_no, to_chat(raw, fmt)))
        except RecordError as exc:
            problems.append(DataProblem(exc.kind, line_no, exc.field, exc.message))
    return fmt, examples, problems


def read_examples(path: Path) -> list[dict]:
    """All examples of a file as chat examples; the first problem raises a DataError naming it."""
    _, examples, problems = parse_file(path)
    if problems:
        more = f" ({len(problems) - 1} more)" if len(problems) > 1 else ""
        raise DataError(
            f"{problems[0].where(path)}{more}; run `tuneloop data check {path}` "
            "to list every problem"
        )
    if not examples:
        raise DataError(f"{path}: no examples")
    return [example for _, example in examples]


def prompt_and_completion(example: dict) -> tuple[list[dict], str]:
    """Split a chat example into the messages before its last assistant turn, and that turn."""
    messages = example["messages"]
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return [{"role": m["role"], "content": m["content"]} for m in messages[:last]], messages[last][
        "content"
    ]
