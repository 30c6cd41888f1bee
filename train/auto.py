"""The `auto` hyperparameters: what is chosen, and a sentence saying why, for the log and report.

Epochs follow OpenAI's documented fine-tuning rule: aim for 3 passes, but at least ~100 example
visits for tiny sets (up to 25 epochs) and at most ~25,000 for large ones (down to 1 epoch).
Then a token budget caps the total: on a CPU the budget is what keeps training within minutes,
and the log says when it bites. Batch size and learning rate scale with the data set and the
method (adapter methods take a much larger step than full fine-tuning).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25

BASE_LR = {"lora": 1e-3, "dora": 1e-3, "rslora": 2.5e-4, "qlora": 1e-3}
BASE_LR_OTHER = {"prompt-tuning": 3e-2, "full": 2e-5}
REFERENCE_BATCH = 16


@dataclass(frozen=True)
class Choice:
    """A resolved value and the reason for it (logged and written to training_config.json)."""

    value: float
    reason: str


def openai_epochs(n_examples: int) -> Choice:
    """OpenAI's rule for `n_epochs: auto` from the number of training examples."""
    if n_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        epochs = min(MAX_DEFAULT_EPOCHS, math.ceil(MIN_TARGET_EXAMPLES / n_examples))
        why = f"{n_examples} examples x {TARGET_EPOCHS} < {MIN_TARGET_EXAMPLES} visits"
    elif n_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        epochs = max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
        why = f"{n_examples} examples x {TARGET_EPOCHS} > {MAX_TARGET_EXAMPLES} visits"
    else:
        epochs = TARGET_EPOCHS
        why = f"{n_examples} examples: the default {TARGET_EPOCHS} passes"
    return Choice(epochs, f"{epochs} epochs by OpenAI's rule ({why})")


def auto_epochs(n_examples: int, tokens_per_epoch: int, token_budget: int | None) -> Choice:
    """OpenAI's rule, then capped (fractional epochs allowed) by the training-token budget."""
    rule = openai_epochs(n_examples)
    if not token_budget or rule.value * tokens_per_epoch <= token_budget:
        return rule
    capped = max(token_budget / tokens_per_epoch, 1 / max(n_examples, 1))
    return Choice(
        round(capped, 3),
        f"{rule.reason}, capped to {capped:.2f} epochs by the token budget of "
        f"{token_budget:,} training tokens ({tokens_per_epoch:,} tokens per epoch); "
        "pass --epochs or --token-budget to change",
    )


def auto_batch_size(n_examples: int) -> Choice:
    """About 1% of the examples, between 4 and 64 (small steps help small data sets)."""
    size = int(min(64, max(4, 2 ** round(math.log2(max(n_examples, 1) * 0.01 or 1)))))
    return Choice(size, f"batch of {size} examples (~1% of {n_examples} examples, within 4-64)")


def auto_learning_rate(method: str, batch_size: int) -> Choice:
    """The method's base rate, scaled by the square root of batch size / 16."""
    base = BASE_LR.get(method) or BASE_LR_OTHER[method]
    lr = base * math.sqrt(batch_size / REFERENCE_BATCH)
    return Choice(
        float(f"{lr:.3g}"),
        f"{lr:.3g} = {base:g} for {method} x sqrt(batch {batch_size} / {REFERENCE_BATCH})",
    )


def resolve_choices(method: str, options, data, packed: bool) -> dict[str, Choice]:
    """Every `auto` option of a run resolved, each with its reason."""
    n = len(data.train_encoded)
    tokens_per_epoch = sum(len(e) for e in data.train_encoded)
    if options.epochs == "auto":
        budget = options.token_budget or None
        epochs = auto_epochs(n, tokens_per_epoch, budget)
    else:
        epochs = Choice(options.epochs, "as given")
    batch = (
        auto_batch_size(n)
        if options.batch_size == "auto"
        else Choice(options.batch_size, "as given")
    )
    lr = (
        auto_learning_rate(method, int(batch.value))
        if options.lr == "auto"
        else Choice(options.lr, "as given")
    )
    return {
        "epochs": epochs,
        "batch_size": batch,
        "lr": lr,
        "precision": precision_choice(options.precision, method),
        "packing": Choice(
            packed,
            "packed rows, attention kept inside each example"
            if packed
            else ("off for prompt-tuning (virtual tokens)" if options.packing else "off as given"),
        ),
    }


def precision_choice(asked: str, method: str) -> Choice:
    if asked != "auto":
        return Choice(asked, "as given")
    if method == "qlora":
        return Choice("fp32", "qlora computes in fp32 around its 4-bit weights")
    if bf16_supported():
        return Choice("bf16", "bf16 autocast: the processor has bf16 matrix instructions")
    return Choice("fp32", "fp32: no bf16 matrix instructions on this processor")


def bf16_supported() -> bool:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
