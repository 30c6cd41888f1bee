"""Exact and near-duplicate detection (MinHash + LSH from datasketch).

Two examples are *exact duplicates* when their messages are equal after case folding and
collapsing whitespace. Two examples are *near duplicates* when the estimated Jaccard similarity
of their prompts' word 3-gram sets is at least the threshold (0.8 by default).
Prompts, not answers, are compared: the same question asked twice teaches the model nothing
new, and the same question in the test split as in training is leakage. MinHash uses 128
permutations, so an estimate is within about +-0.09 of the true similarity (two standard errors);
candidates found by LSH are confirmed by their MinHash estimate before anything is removed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from datasketch import MinHash, MinHashLSH

NUM_PERM = 128
SHINGLE = 3
_WORD = re.compile(r"\w+", re.UNICODE)


def exact_key(example: dict) -> str:
    return "\x00".join(
        f"{m['role']}:{' '.join(m['content'].casefold().split())}" for m in example["messages"]
    )


def prompt_text(example: dict) -> str:
    """Everything before the last assistant turn (the model's input for that answer)."""
    messages = example["messages"]
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return "\n".join(m["content"] for m in messages[:last])


def shingles(text: str, size: int = SHINGLE) -> set[bytes]:
    words = _WORD.findall(text.casefold())
    if len(words) < size:
        return {" ".join(words).encode()}
    return {" ".join(words[i : i + size]).encode() for i in range(len(words) - size + 1)}


def minhash(text: str) -> MinHash:
    signature = MinHash(num_perm=NUM_PERM, seed=1)
    signature.update_batch(list(shingles(text)))
    return signature


class NearDuplicateIndex:
    """Signatures of kept examples; `match` names the first kept one a new example duplicates."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
        self._signatures: dict[str, MinHash] = {}

    def match(self, signature: MinHash) -> str | None:
        best = None
        for key in self._lsh.query(signature):
            similarity = signature.jaccard(self._signatures[key])
            if similarity >= self.threshold and (best is None or similarity > best[1]):
                best = (key, similarity)
        return None if best is None else best[0]

    def add(self, key: str, signature: MinHash) -> None:
        self._lsh.insert(key, signature)
        self._signatures[key] = signature


def find_duplicates(
    examples: Sequence[dict], near_threshold: float | None
) -> tuple[dict[int, tuple[str, int]], list[MinHash]]:
    """{index: (reason, index of the kept example)} for duplicates, and every prompt signature.

    The first occurrence is kept. `near_threshold` None turns near-duplicate removal off.
    """
    removed: dict[int, tuple[str, int]] = {}
    seen: dict[str, int] = {}
    index = NearDuplicateIndex(near_threshold) if near_threshold else None
    signatures = [minhash(prompt_text(e)) for e in examples]
    for i, example in enumerate(examples):
        key = exact_key(example)
        if key in seen:
            removed[i] = ("exact_duplicate", seen[key])
            continue
        seen[key] = i
        if index is None:
            continue
        if (match := index.match(signatures[i])) is not None:
            removed[i] = ("near_duplicate", int(match))
            continue
        index.add(str(i), signatures[i])
    return removed, signatures
