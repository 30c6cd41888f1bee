"""Turn a chat example into token ids and loss labels with the base model's own chat template.

The example is rendered once with the tokenizer's chat template, so training sees exactly the
text a server builds for the same messages (including a default system prompt the template may
inject). Which tokens carry loss is found from character spans: the text of each assistant turn
(and the end-of-turn token after it) is located by rendering the conversation up to that turn
with the generation prompt, which must be a prefix of the full rendering.
"""

from __future__ import annotations

from dataclasses import dataclass

from tuneloop.errors import DataError

IGNORE_INDEX = -100
"""Label of a token that carries no loss (PyTorch's cross-entropy default)."""


@dataclass
class Encoded:
    """One tokenized example: ids, per-token labels (IGNORE_INDEX where no loss), and sizes."""

    input_ids: list[int]
    labels: list[int]
    prompt_length: int
    """Tokens before the last assistant turn (the prompt a server would see for it)."""

    @property
    def supervised_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)

    def __len__(self) -> int:
        return len(self.input_ids)


def render(tokenizer, messages: list[dict], *, generation_prompt: bool = False) -> str:
    plain = [{"role": m["role"], "content": m["content"]} for m in messages]
    return tokenizer.apply_chat_template(
        plain, tokenize=False, add_generation_prompt=generation_prompt
    )


def encode(tokenizer, messages: list[dict], *, train_on_prompt: bool = False) -> Encoded:
    """Token ids of the rendered conversation, with labels on the assistant turns only.

    An assistant turn with `weight` 0 gets no loss. With `train_on_prompt`, every token but
    padding carries loss (weight-0 turns still excepted).
    """
    text = render(tokenizer, messages)
    spans, prompt_chars = _assistant_spans(tokenizer, messages, text)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    labels = [IGNORE_INDEX] * len(ids)
    for i, (start, _) in enumerate(offsets):
        inside = any(lo <= start < hi for lo, hi, weight in spans if weight)
        excluded = any(lo <= start < hi for lo, hi, weight in spans if not weight)
        if inside or (train_on_prompt and not excluded):
            labels[i] = ids[i]
    prompt_length = sum(1 for start, _ in offsets if start < prompt_chars)
    return Encoded(input_ids=list(ids), labels=labels, prompt_length=prompt_length)


def prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    """Ids of the prompt a server sees: the messages with the generation prompt appended."""
    text = render(tokenizer, messages, generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _assistant_spans(
    tokenizer, messages: list[dict], text: str
) -> tuple[list[tuple[int, int, int]], int]:
    """(start, end, weight) character spans of each assistant turn, and where the last begins."""
    spans, start = [], 0
    end_text = tokenizer.eos_token or ""
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = render(tokenizer, messages[:i], generation_prompt=True)
        if not text.startswith(prefix):
            raise DataError(
                f"the chat template of {tokenizer.name_or_path} does not render a conversation's "
                "start as a prefix of the whole; cannot tell prompt from answer tokens"
            )
        start = len(prefix)
        content_at = text.find(message["content"], start)
        end = (content_at if content_at >= 0 else start) + len(message["content"])
        if end_text and text.startswith(end_text, end):
            end += len(end_text)  # the end-of-turn token is what teaches the model to stop
        spans.append((start, end, message.get("weight", 1)))
    return spans, start
