"""The model's own answers to its training prompts: the text a draft table has to guess.

A draft is kept only where it equals what *this* model says, and a small fine-tune does not
say its training answers back: it answers with a few stock phrases of its own ("Could you
send me the order number so I can check it?") that the training answers hold only in pieces.
So the table is built from the model's greedy answers to training prompts, up to each
answer's end token as `serve` stops there (never from the validation or test prompts that
measure it). On the support-triage bench prompts this raised the drafted tokens kept per
pass over the answers from 1.77 (table of the training answers) to 2.3.

The prompts are answered in batches of similar length (500 prompts: about 2.5 minutes for
SmolLM2-135M's fused int8 variant on 2 cores); batches decode one token per pass, the runtime
speculates for a single prompt only.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

ANSWER_ROOM = 1.5
"""An answer may run to this many times the longest training answer's tokens."""
BATCH = 8
"""Prompts answered together. Measured on 2 cores, 150 training prompts of the demo adapter:
54 s in batches of 8 against 83 s one at a time with the drafts speculating (fused fp32), and
43 s against 60 s (fused int8); the answers are the same greedy ones."""


def spread(count: int, total: int) -> list[int]:
    """`count` indices spread evenly over `total` items (all of them when count >= total), so
    a file sorted by topic still gives answers from every topic."""
    if count >= total:
        return list(range(total))
    return sorted({int(i) for i in np.linspace(0, total - 1, count).round()})


def model_answers(
    model, prompts: list[list[int]], longest_answer: int
) -> list[tuple[list[int], int]]:
    """(prompt + the model's greedy answer, where the answer starts) for each prompt."""
    from tuneloop.progress import bar, duration

    budget = max(16, int(longest_answer * ANSWER_ROOM))
    answers: dict[int, list[int]] = {}
    started = time.perf_counter()
    desc = "drafts: the model answers training prompts"
    # Similar lengths together: less padding, and a batch ends when its longest answer does.
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    with bar(total=len(prompts), desc=desc, unit="answer") as progress:
        for start in range(0, len(order), BATCH):
            rows = order[start : start + BATCH]
            generation = model.generate([prompts[i] for i in rows], budget)
            answers.update(zip(rows, generation.tokens, strict=True))
            progress.update(len(rows))
    log.info(
        "drafts: the model answered %d training prompts in %s",
        len(prompts),
        duration(time.perf_counter() - started),
    )
    return [(list(prompt) + answers[i], len(prompt)) for i, prompt in enumerate(prompts)]


def answering_variant(folders: list[Path]) -> Path:
    """The variant that answers for the table: the smallest fused variant whose gate passed
    (the quantized one `serve` recommends: its answers are the ones drafts must match, and it
    is the fastest to run), or the smallest of all when none passed (or none was judged yet:
    a folder exported and drafted by hand)."""
    from tuneloop.optimize.artifacts import read_artifact

    passed = [f for f in folders if read_artifact(f).get("gate", {}).get("status") == "passed"]
    return min(passed or folders, key=_size)


def _size(folder: Path) -> int:
    return sum(path.stat().st_size for path in Path(folder).glob("*.onnx*"))
