"""Batched greedy generation with left padding, for evaluation."""

from __future__ import annotations

import torch

from tuneloop.progress import bar
from tuneloop.train.encoding import prompt_ids


@torch.inference_mode()
def generate_answers(
    model,
    tokenizer,
    prompts: list[list[dict]],
    *,
    max_new_tokens: int,
    batch_size: int = 16,
    desc: str = "answers",
) -> list[str]:
    """The greedy answer to each prompt (a list of chat messages), in the order given.

    Prompts are batched by length (less padding), padded on the left so every row's next
    token comes at the same position, and each row stops at the end-of-turn token.
    """
    encoded = [prompt_ids(tokenizer, messages) for messages in prompts]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    answers: list[str] = [""] * len(encoded)
    with bar(total=len(encoded), desc=desc, unit="answer") as progress:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            width = max(len(encoded[i]) for i in chunk)
            ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, i in enumerate(chunk):
                ids[row, width - len(encoded[i]) :] = torch.tensor(encoded[i])
                mask[row, width - len(encoded[i]) :] = 1
            output = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            for row, i in enumerate(chunk):
                answers[i] = tokenizer.decode(output[row, width:], skip_special_tokens=True).strip()
            progress.update(len(chunk))
    return answers
