"""Text cleaning applied by `tuneloop data prepare`, conservative enough for code and prose.

Per message content: Unicode NFC normalization (canonical only: NFKC would rewrite
full-width letters, ligatures and superscripts, which can change meaning), Windows and old Mac
line ends to `\\n`, exotic spaces (no-break, en/em, ideographic) to a plain space, zero-width
characters and byte-order marks removed (the zero-width joiner is kept: emoji need it), other
control characters removed (tab and newline kept), trailing spaces stripped per line, more than
two blank lines collapsed, and the whole content stripped. Runs of inner spaces are kept, so
indentation in code survives.
"""

from __future__ import annotations

import re
import unicodedata

_SPACES = re.compile(r"[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]")
_ZERO_WIDTH = re.compile(r"[\u200b\u200c\u2060\ufeff]")
_TRAILING = re.compile(r"[ \t]+\n")
_BLANK_LINES = re.compile(r"\n{4,}")


def clean_text(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _SPACES.sub(" ", text)
    text = _ZERO_WIDTH.sub("", text)
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")
    text = _TRAILING.sub("\n", text)
    text = _BLANK_LINES.sub("\n\n\n", text)
    return text.strip()


def clean_example(example: dict) -> tuple[dict, bool]:
    """The example with every message cleaned, and whether anything changed."""
    messages = [{**m, "content": clean_text(m["content"])} for m in example["messages"]]
    changed = any(
        a["content"] != b["content"] for a, b in zip(messages, example["messages"], strict=True)
    )
    return {**example, "messages": messages}, changed


def empty_message(example: dict) -> int | None:
    """Index of the first message left empty by cleaning, if any."""
    return next((i for i, m in enumerate(example["messages"]) if not m["content"]), None)
