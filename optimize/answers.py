"""Greedy answers of an optimized model to chat prompts, for the gate's task accuracy.

Scoring the answers (accuracy, macro-F1, valid JSON) is `tuneloop.train.metrics.label_metrics`,
the same function `tuneloop eval` reports with.
"""

from __future__ import annotations

from tuneloop.data_formats import prompt_and_completion


def generate_answers(
    model, examples: list[dict], batch_size: int = 8, margin: int = 16, desc: str = "answers"
):
    """Greedy answers of `model` (a `runtime.CausalLM`) to each example's prompt."""
    from tuneloop.progress import bar

    tokenizer = model.tokenizer
    prompts, budget = [], 0
    for example in examples:
        prompt, completion = prompt_and_completion(example)
        prompts.append(tokenizer.apply_chat_template(prompt, add_generation_prompt=True))
        budget = max(budget, len(tokenizer(completion, add_special_tokens=False)["input_ids"]))
    outputs = []
    # Similar lengths together: less padding, and the batch ends when its longest answer does.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    texts: dict[int, str] = {}
    with bar(total=len(order), desc=desc, unit="answer") as progress:
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            result = model.generate([prompts[i] for i in rows], budget + margin)
            for i, tokens in zip(rows, result.tokens, strict=True):
                texts[i] = tokenizer.decode(tokens, skip_special_tokens=True)
            progress.update(len(rows))
    outputs = [texts[i] for i in range(len(prompts))]
    return outputs
