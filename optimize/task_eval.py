"""Task accuracy when the answers are JSON objects with a label, e.g. {"category": ..., ...}.

`label_metrics` is what `tuneloop eval` reports for labelled data too (accuracy, macro-F1, the
share of outputs that are valid JSON with the label field); it lives here until the train stage
has its own evaluation module, then the two should share one function.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

from tuneloop.data_formats import prompt_and_completion

MAX_AUTO_LABELS = 20


@dataclass(frozen=True)
class LabelMetrics:
    examples: int
    accuracy: float
    macro_f1: float
    valid_json: float
    """Share of outputs that parse as a JSON object holding the label field."""


def parse_label(text: str, field: str) -> str | None:
    """The label in a JSON answer, or None when the answer is not JSON with that field."""
    try:
        value = json.loads(text.strip())
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict) or field not in value:
        return None
    return str(value[field])


def detect_label_field(examples: list[dict]) -> str | None:
    """A field present in every JSON answer with few distinct string values (a class label)."""
    answers = []
    for example in examples:
        try:
            value = json.loads(prompt_and_completion(example)[1])
        except json.JSONDecodeError:
            return None
        if not isinstance(value, dict):
            return None
        answers.append(value)
    if not answers:
        return None
    for key in answers[0]:
        values = [a.get(key) for a in answers]
        if all(isinstance(v, str) for v in values):
            distinct = len(set(values))
            if 1 < distinct <= min(MAX_AUTO_LABELS, max(2, len(values) // 2)):
                return key
    return None


def label_metrics(outputs: list[str], references: list[str], field: str) -> LabelMetrics:
    predicted = [parse_label(text, field) for text in outputs]
    expected = [parse_label(text, field) for text in references]
    correct = sum(p is not None and p == e for p, e in zip(predicted, expected, strict=True))
    n = len(outputs)
    return LabelMetrics(
        examples=n,
        accuracy=correct / n if n else 0.0,
        macro_f1=_macro_f1(predicted, expected),
        valid_json=sum(p is not None for p in predicted) / n if n else 0.0,
    )


def _macro_f1(predicted: list[str | None], expected: list[str | None]) -> float:
    labels = sorted({e for e in expected if e is not None})
    if not labels:
        return 0.0
    pairs = Counter(zip(predicted, expected, strict=True))
    scores = []
    for label in labels:
        tp = pairs[(label, label)]
        fp = sum(c for (p, e), c in pairs.items() if p == label and e != label)
        fn = sum(c for (p, e), c in pairs.items() if e == label and p != label)
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


def generate_answers(model, examples: list[dict], batch_size: int = 8, margin: int = 16):
    """Greedy answers of `model` (a `runtime.CausalLM`) to each example's prompt."""
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
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        result = model.generate([prompts[i] for i in rows], budget + margin)
        for i, tokens in zip(rows, result.tokens, strict=True):
            texts[i] = tokenizer.decode(tokens, skip_special_tokens=True)
    outputs = [texts[i] for i in range(len(prompts))]
    return outputs
