"""Command-line entry points of the data and training stage."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from tuneloop.base_model import DEFAULT_BASE
from tuneloop.errors import NotBuiltYetError

Method = Literal["lora", "dora", "rslora", "qlora", "prompt-tuning", "full"]


def data_check(file: Path, *, base: str = DEFAULT_BASE, json: bool = False) -> int:
    """Validate a training file and print its problems and statistics.

    Every problem is reported with file, line number and field. Exits 1 when there are errors,
    so it can gate a CI job.

    Args:
        file: JSONL or CSV file of chat, prompt/completion or alpaca examples.
        base: base model whose tokenizer and context length the limits use.
        json: print the report as JSON instead of text.
    """
    raise NotBuiltYetError("`tuneloop data check` is not built yet in this version")


def data_prepare(file: Path, *, out: Path, base: str = DEFAULT_BASE) -> int:
    """Clean, deduplicate and split a data file into train/validation/test with a report.

    Args:
        file: JSONL or CSV file of examples.
        out: folder for train.jsonl, val.jsonl, test.jsonl and the data report.
        base: base model whose tokenizer measures lengths.
    """
    raise NotBuiltYetError("`tuneloop data prepare` is not built yet in this version")


def train(
    *,
    data: Path,
    out: Path,
    base: str = DEFAULT_BASE,
    method: Method = "lora",
    val: Path | None = None,
) -> int:
    """Train an adapter (LoRA by default) on a data file.

    Args:
        data: training file (JSONL or CSV).
        out: folder for the adapter, metrics, report and drift reference profile.
        base: base model: an alias, a local folder or a Hugging Face model id.
        method: adaptation method.
        val: validation file; without it a share of the data is held out.
    """
    raise NotBuiltYetError("`tuneloop train` is not built yet in this version")


def evaluate(*, adapter: Path, data: Path, base: str = DEFAULT_BASE) -> int:
    """Compare the base model and an adapter on a test file (loss, perplexity, task accuracy).

    Args:
        adapter: folder written by `tuneloop train`.
        data: test file (JSONL or CSV).
        base: base model the adapter was trained on.
    """
    raise NotBuiltYetError("`tuneloop eval` is not built yet in this version")
