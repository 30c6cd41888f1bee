"""Train/validation/test splits (stratified when labels are given), leakage removal, k folds.

Splits are drawn with a seeded generator, per label when a label is known, with the rounding
remainders given to the largest groups, so each split keeps the label balance of the whole.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

from tuneloop.train.dedup import NearDuplicateIndex


def split_indices(
    n: int,
    *,
    val: float,
    test: float,
    seed: int,
    labels: Sequence[str | None] | None = None,
) -> dict[str, list[int]]:
    """{"train", "val", "test"}: index lists, stratified by `labels` when given."""
    groups: dict[str | None, list[int]] = defaultdict(list)
    for i in range(n):
        groups[labels[i] if labels else None].append(i)
    rng = random.Random(seed)
    out: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    targets = {"val": round(n * val), "test": round(n * test)}
    shares = {name: _allocate(groups, targets[name]) for name in ("val", "test")}
    for key in sorted(groups, key=str):
        members = groups[key][:]
        rng.shuffle(members)
        n_val, n_test = shares["val"][key], shares["test"][key]
        out["val"] += members[:n_val]
        out["test"] += members[n_val : n_val + n_test]
        out["train"] += members[n_val + n_test :]
    for name in out:
        rng.shuffle(out[name])
    return out


def _allocate(groups: dict, total: int) -> dict:
    """Split `total` over the groups in proportion to their sizes (largest remainder method)."""
    n = sum(len(v) for v in groups.values()) or 1
    exact = {k: total * len(v) / n for k, v in groups.items()}
    counts = {k: int(x) for k, x in exact.items()}
    leftover = total - sum(counts.values())
    for k in sorted(exact, key=lambda k: (counts[k] - exact[k], str(k)))[:leftover]:
        counts[k] += 1
    return counts


def leaked(
    train: Sequence[int], held_out: Sequence[int], signatures: Sequence, threshold: float
) -> dict[int, int]:
    """{held-out index: train index} for held-out examples whose prompt near-duplicates training."""
    index = NearDuplicateIndex(threshold)
    for i in train:
        index.add(str(i), signatures[i])
    found = {}
    for i in held_out:
        if (match := index.match(signatures[i])) is not None:
            found[i] = int(match)
    return found


def k_folds(
    indices: Sequence[int], k: int, *, seed: int, labels: Sequence[str | None] | None = None
) -> list[tuple[list[int], list[int]]]:
    """k (train, val) pairs over `indices`, each index validated exactly once, stratified."""
    groups: dict[str | None, list[int]] = defaultdict(list)
    for i in indices:
        groups[labels[i] if labels else None].append(i)
    rng = random.Random(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    offset = 0
    for key in sorted(groups, key=str):
        members = groups[key][:]
        rng.shuffle(members)
        for j, i in enumerate(members):
            folds[(j + offset) % k].append(i)
        offset += len(members)  # keep fold sizes even across groups
    return [
        ([i for f, fold in enumerate(folds) if f != v for i in fold], sorted(folds[v]))
        for v in range(k)
    ]
