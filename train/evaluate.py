"""`tuneloop eval`: the base model and the adapter side by side on a test split.

1) loss and perplexity of the reference answers (teacher-forced, answer tokens only)
2) greedy answers of both models, batched, `max_new_tokens` = longest reference + margin
3) when answers are JSON with a label: accuracy, macro-F1, confusion matrix, share of valid
   JSON and of JSON in the expected shape; per-group accuracy and its largest gap with
   `--group-field`
The adapter is merged into a copy of the base weights for generation (same results as the
unmerged adapter, without its per-layer overhead).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import torch

from tuneloop.data_formats import prompt_and_completion, read_examples
from tuneloop.errors import UsageError
from tuneloop.progress import bar, duration
from tuneloop.train.encoding import IGNORE_INDEX, Encoded, encode
from tuneloop.train.generation import generate_answers
from tuneloop.train.labels import answer_keys, label_of
from tuneloop.train.metrics import label_metrics
from tuneloop.train.packing import pack_rows

log = logging.getLogger(__name__)
MARGIN_TOKENS = 16


def evaluate_adapter(
    adapter: Path,
    data: Path,
    resolved,
    *,
    manifest: dict | None,
    label_field: str | None,
    group_field: str | None,
    batch_size: int,
    limit: int | None,
) -> dict:
    from tuneloop.base_model import load_model, load_tokenizer

    examples = read_examples(data)[:limit]
    tokenizer = load_tokenizer(resolved)
    task = (manifest or {}).get("task", {})
    label_field = label_field or task.get("label_field")
    encoded = [encode(tokenizer, e["messages"]) for e in examples]
    max_new = max(e.supervised_tokens for e in encoded) + MARGIN_TOKENS
    context = _Context(examples, encoded, tokenizer, label_field, group_field, task, max_new)
    model = load_model(resolved)
    results = {"base": context.score("base", model, batch_size)}
    model = _with_adapter(model, adapter, manifest)
    results["adapter"] = context.score("adapter", model, batch_size)
    return {
        "adapter": str(adapter),
        "data": str(data),
        "base": resolved.spec,
        "label_field": label_field,
        "group_field": group_field,
        "examples": len(examples),
        "max_new_tokens": max_new,
        "results": results,
        "samples": context.samples(results),
    }


class _Context:
    """The test split, prepared once and scored for each model."""

    def __init__(self, examples, encoded, tokenizer, label_field, group_field, task, max_new):
        self.examples, self.encoded, self.tokenizer = examples, encoded, tokenizer
        self.label_field, self.group_field, self.max_new = label_field, group_field, max_new
        self.prompts = [prompt_and_completion(e)[0] for e in examples]
        self.references = [prompt_and_completion(e)[1] for e in examples]
        self.labels = None
        if label_field:
            self.labels = [label_of(e, label_field) for e in examples]
            if any(label is None for label in self.labels):
                missing = sum(label is None for label in self.labels)
                raise UsageError(f"{missing} test examples have no '{label_field}' label")
            self.label_set = sorted(set(task.get("labels") or []) | set(self.labels))
            self.keys = answer_keys(examples[0])
        self.groups = None
        if group_field:
            self.groups = [_group_of(e, group_field) for e in examples]
        self.answers: dict[str, list[str]] = {}

    def score(self, name: str, model, batch_size: int) -> dict:
        started = time.perf_counter()
        loss = completion_loss(model, self.encoded)
        answers = generate_answers(
            model,
            self.tokenizer,
            self.prompts,
            max_new_tokens=self.max_new,
            batch_size=batch_size,
            desc=f"eval: {name} answers",
        )
        self.answers[str(len(self.answers))] = answers
        result = {
            "loss": loss,
            "perplexity": math.exp(min(loss, 50.0)),
            "exact_match": sum(a == r for a, r in zip(answers, self.references, strict=True))
            / len(answers),
        }
        if self.labels is not None:
            result.update(
                label_metrics(
                    answers,
                    self.labels,
                    label_field=self.label_field,
                    labels=self.label_set,
                    expected_keys=self.keys,
                    groups=self.groups,
                )
            )
        result["seconds"] = round(time.perf_counter() - started, 1)
        log.info("eval: %s scored in %s", name, duration(result["seconds"]))
        return result

    def samples(self, results: dict, n: int = 5) -> list[dict]:
        names = list(results)
        return [
            {
                "prompt": self.prompts[i][-1]["content"],
                "reference": self.references[i],
                **{name: self.answers[str(k)][i] for k, name in enumerate(names)},
            }
            for i in range(min(n, len(self.examples)))
        ]


def _group_of(example: dict, field: str):
    value = example.get("metadata", {}).get(field)
    if value is None:
        value = label_of(example, field)
    return value


@torch.inference_mode()
def completion_loss(model, encoded: list[Encoded], pack_length: int = 1024) -> float:
    """Mean cross-entropy per answer token, teacher-forced, packed rows without gradients."""
    if (
        getattr(model, "active_peft_config", None) is not None
        and model.active_peft_config.is_prompt_learning
    ):
        return _unpacked_loss(model, encoded)  # virtual tokens: one example at a time
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    total, count = 0.0, 0
    rows = pack_rows([len(e) for e in encoded], pack_length, seed=0)
    for row in bar(rows, desc="eval: loss of the reference answers", unit="row"):
        members = [encoded[i] for i in row]
        ids = torch.tensor([[t for e in members for t in e.input_ids]])
        labels = torch.tensor([t for e in members for t in e.labels])
        positions = torch.tensor([[p for e in members for p in range(len(e))]])
        targets = labels[1:]
        keep = (targets != IGNORE_INDEX).nonzero().squeeze(1)
        logits = causal_lm(
            input_ids=ids, position_ids=positions, logits_to_keep=keep, use_cache=False
        ).logits[0]
        total += float(
            torch.nn.functional.cross_entropy(logits.float(), targets[keep], reduction="sum")
        )
        count += int(keep.numel())
    return total / max(count, 1)


def _unpacked_loss(model, encoded: list[Encoded]) -> float:
    total, count = 0.0, 0
    for e in encoded:
        out = model(input_ids=torch.tensor([e.input_ids]), labels=torch.tensor([e.labels]))
        n = e.supervised_tokens - (e.labels[0] != IGNORE_INDEX)
        total += float(out.loss) * n
        count += n
    return total / max(count, 1)


def _with_adapter(model, adapter: Path, manifest: dict | None):
    method = (manifest or {}).get("method", "lora")
    if method == "full":
        from tuneloop.base_model import load_model, resolve_base

        return load_model(resolve_base(str(adapter)))
    from peft import PeftModel

    peft_model = PeftModel.from_pretrained(model, adapter)
    if method == "prompt-tuning":
        return peft_model.eval()
    return peft_model.merge_and_unload().eval()
