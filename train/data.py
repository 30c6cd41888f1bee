"""Training data for `tuneloop train`: read, hold out validation, encode, detect the label."""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tuneloop.data_formats import prompt_and_completion, read_examples
from tuneloop.errors import DataError
from tuneloop.train.checks import MIN_EXAMPLES
from tuneloop.train.encoding import Encoded, encode
from tuneloop.train.labels import label_of

log = logging.getLogger(__name__)
MAX_LABELS = 50


@dataclass
class TrainingData:
    train: list[dict]
    val: list[dict]
    train_encoded: list[Encoded]
    val_encoded: list[Encoded]
    dropped: dict[str, int]
    """examples left out, by reason (counted in the log and training_config.json)"""
    val_source: str


def load_training_data(
    data: Path,
    val: Path | None,
    tokenizer,
    *,
    max_seq_len: int,
    val_fraction: float,
    seed: int,
    train_on_prompt: bool,
) -> TrainingData:
    train_examples = read_examples(data)
    if val is not None:
        val_examples, source = read_examples(val), str(val)
    else:
        train_examples, val_examples = _hold_out(train_examples, val_fraction, seed)
        source = f"{len(val_examples)} examples ({val_fraction:.0%}) held out of {data}"
    dropped: Counter = Counter()
    encoded = {}
    for name, examples in (("train", train_examples), ("val", val_examples)):
        kept, kept_encoded = [], []
        for example in examples:
            enc = encode(tokenizer, example["messages"], train_on_prompt=train_on_prompt)
            if len(enc) > max_seq_len:
                dropped[f"{name}: over --max-seq-len {max_seq_len}"] += 1
                continue
            if enc.supervised_tokens == 0:
                dropped[f"{name}: no tokens to learn from"] += 1
                continue
            kept.append(example)
            kept_encoded.append(enc)
        encoded[name] = (kept, kept_encoded)
    for reason, n in dropped.items():
        log.warning("left out %d examples (%s)", n, reason)
    if len(encoded["train"][0]) < MIN_EXAMPLES:
        raise DataError(
            f"{data}: {len(encoded['train'][0])} usable training examples; at least "
            f"{MIN_EXAMPLES} are needed (see `tuneloop data check {data}`)"
        )
    if not encoded["val"][0]:
        raise DataError(f"no usable validation examples ({source})")
    return TrainingData(
        train=encoded["train"][0],
        val=encoded["val"][0],
        train_encoded=encoded["train"][1],
        val_encoded=encoded["val"][1],
        dropped=dict(dropped),
        val_source=source,
    )


def _hold_out(examples: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(examples) * fraction))
    held = set(order[:n_val])
    return (
        [e for i, e in enumerate(examples) if i not in held],
        [e for i, e in enumerate(examples) if i in held],
    )


def detect_label_field(examples: list[dict]) -> str | None:
    """The one string field of the JSON answers that looks like a label, if there is one.

    Every answer must be a JSON object; a field qualifies when it is a string in every answer
    and takes at most MAX_LABELS values, each seen at least twice on average.
    """
    values: dict[str, list] = {}
    for example in examples:
        _, completion = prompt_and_completion(example)
        try:
            answer = json.loads(completion)
        except (json.JSONDecodeError, ValueError):
            return None
        if not isinstance(answer, dict):
            return None
        for key, value in answer.items():
            values.setdefault(key, []).append(value)
    candidates = [
        key
        for key, seen in values.items()
        if len(seen) == len(examples)
        and all(isinstance(v, str) for v in seen)
        and len(set(seen)) <= min(MAX_LABELS, len(seen) / 2)
    ]
    return candidates[0] if len(candidates) == 1 else None


def task_description(examples: list[dict], label_field: str | None) -> dict:
    """The manifest's `task`: output kind, label field and the labels seen in training."""
    if not label_field:
        is_json = detect_json_output(examples)
        return {"output": "json" if is_json else "text", "label_field": None, "labels": []}
    labels = sorted({label for e in examples if (label := label_of(e, label_field)) is not None})
    return {"output": "json", "label_field": label_field, "labels": labels}


def detect_json_output(examples: list[dict]) -> bool:
    for example in examples:
        _, completion = prompt_and_completion(example)
        try:
            if not isinstance(json.loads(completion), dict):
                return False
        except (json.JSONDecodeError, ValueError):
            return False
    return True
