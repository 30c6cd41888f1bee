"""Labels carried inside JSON answers, e.g. `{"category": "billing", "reply": "..."}`.

Shared by data checks and stratified splits (the reference answers) and by evaluation (the
model's generated answers): one parser, so "valid JSON in the expected shape" means the same
thing everywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tuneloop.data_formats import prompt_and_completion


@dataclass(frozen=True)
class ParsedAnswer:
    """What a generated (or reference) answer holds."""

    is_json: bool
    """The text is one JSON object (surrounding whitespace allowed)."""
    label: str | None
    """The label field's value when it is a string, else None."""
    keys: tuple[str, ...] = ()

    def has_shape(self, expected_keys: tuple[str, ...]) -> bool:
        """A JSON object with exactly the expected keys and a string label."""
        return self.is_json and self.label is not None and set(self.keys) == set(expected_keys)


def parse_answer(text: str, label_field: str) -> ParsedAnswer:
    try:
        value = json.loads(text.strip())
    except (json.JSONDecodeError, ValueError):
        return ParsedAnswer(False, None)
    if not isinstance(value, dict):
        return ParsedAnswer(False, None)
    label = value.get(label_field)
    return ParsedAnswer(True, label if isinstance(label, str) else None, tuple(value))


def label_of(example: dict, label_field: str) -> str | None:
    """The label of a chat example: from its last assistant answer's JSON, else its metadata."""
    _, completion = prompt_and_completion(example)
    parsed = parse_answer(completion, label_field)
    if parsed.label is not None:
        return parsed.label
    value = example.get("metadata", {}).get(label_field)
    return value if isinstance(value, str) else None


def answer_keys(example: dict) -> tuple[str, ...]:
    """Keys of the reference answer's JSON object (empty when it is not JSON)."""
    _, completion = prompt_and_completion(example)
    try:
        value = json.loads(completion)
    except (json.JSONDecodeError, ValueError):
        return ()
    return tuple(value) if isinstance(value, dict) else ()
