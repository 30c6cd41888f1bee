"""The text every engine of `tuneloop bench` sees: the same token ids for all of them.

Prompts are the demo set's held-out examples (a seeded 10% split) through the chat template,
with the generation prompt added; the perplexity text is the same examples with their
reference answers. Everything is tokenized once, by the model's own tokenizer, and handed
to each engine as token ids, so no engine's tokenizer can change what is measured (the GGUF
of the embedded model carries the same vocabulary).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class BenchTexts:
    prompts: list[list[int]]
    """Chat prompts (generation prompt included), one per batch row."""
    scored: list[list[int]]
    """Prompt + reference answer: the sequences perplexity is measured on."""
    answer_starts: list[int]
    """Index of the first answer token in each scored sequence (perplexity counts from it)."""
    messages: list[list[dict]] = field(default_factory=list)
    """Chat messages of every held-out example (the first ones are those behind `prompts`), for
    servers behind HTTP (they apply the template); distinct, so no prompt repeats."""
    chat_prompts: list[list[int]] = field(default_factory=list)
    """`messages` through the chat template, in the same order: what a server's engine gets
    from them, so the in-process side of the server-overhead ratio runs the very requests
    the HTTP user sent."""

    def to_json(self) -> dict:
        return {
            "prompts": self.prompts,
            "scored": self.scored,
            "answer_starts": self.answer_starts,
            "chat_prompts": self.chat_prompts,
        }

    @classmethod
    def from_json(cls, data: dict) -> BenchTexts:
        chats = data.get("chat_prompts", [])
        return cls(data["prompts"], data["scored"], data["answer_starts"], chat_prompts=chats)


def bench_texts(tokenizer, data: Path | None = None, prompts: int = 8, scored: int = 16):
    """`prompts` chat prompts and `scored` prompt+answer sequences from the held-out split
    (test, then validation examples)."""
    from tuneloop.data_formats import prompt_and_completion, read_examples
    from tuneloop.demo import DEMO_DATA
    from tuneloop.train.split import split_indices

    examples = read_examples(Path(data) if data else DEMO_DATA)
    split = split_indices(len(examples), val=0.1, test=0.1, seed=0)
    held_out = [prompt_and_completion(examples[i]) for i in split["test"] + split["val"]]
    prompt_ids = [
        list(tokenizer.apply_chat_template(messages, add_generation_prompt=True))
        for messages, _ in held_out
    ]
    full_ids, starts = [], []
    for (messages, answer), prompt in zip(held_out[:scored], prompt_ids, strict=False):
        full = tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": answer}])
        full_ids.append(list(full))
        starts.append(len(prompt))
    # Every held-out chat for the HTTP users: a prompt repeated within a run would be served
    # from a server's prompt cache (llama-server keeps each slot's last prompt), which real
    # traffic of distinct tickets does not get.
    chats = [messages for messages, _ in held_out]
    return BenchTexts(prompt_ids[:prompts], full_ids, starts, chats, prompt_ids)
