"""Packing: several short examples in one row, each attending only to itself.

A packed row concatenates examples and restarts `position_ids` at 0 for each one. transformers
(>= 4.53) turns restarting position ids into a block-diagonal causal mask when no attention mask
and no KV cache is passed (so every packed forward passes `use_cache=False`: with the config's
default cache the mask silently stays plain causal), so no token sees another example, and
rotary positions are what they would be alone:
the loss of every example is the same as unpacked (a test checks this on a tiny model). With no
padding left, every token computed is a real one.

Rows are filled by first-fit decreasing inside shuffled windows, which keeps rows nearly full
while the order of examples stays random from epoch to epoch.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from tuneloop.train.encoding import IGNORE_INDEX, Encoded

WINDOW = 64


def pack_rows(
    lengths: Sequence[int], capacity: int, seed: int, window: int = WINDOW
) -> list[list[int]]:
    """Groups of example indices whose total length is at most `capacity` (longer: alone)."""
    order = list(range(len(lengths)))
    random.Random(seed).shuffle(order)
    rows: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: -lengths[i])
        bins: list[tuple[int, list[int]]] = []
        for i in chunk:
            for b, (used, members) in enumerate(bins):
                if used + lengths[i] <= capacity:
                    bins[b] = (used + lengths[i], [*members, i])
                    break
            else:
                bins.append((lengths[i], [i]))
        rows += [members for _, members in bins]
    random.Random(seed + 1).shuffle(rows)
    return rows


class PackedDataset(torch.utils.data.Dataset):
    """One item per packed row: input_ids, labels and restarting position_ids."""

    def __init__(self, examples: Sequence[Encoded], capacity: int, seed: int) -> None:
        self.examples = examples
        self.rows = pack_rows([len(e) for e in examples], capacity, seed)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        members = [self.examples[i] for i in self.rows[index]]
        return {
            "input_ids": [t for e in members for t in e.input_ids],
            "labels": [t for e in members for t in e.labels],
            "position_ids": [p for e in members for p in range(len(e))],
        }

    def examples_per_row(self) -> float:
        return len(self.examples) / max(len(self.rows), 1)


class PackedCollator:
    """Stacks one packed row per batch (the loss then computes logits at labelled positions only).

    A batch of several rows is padded at the end; the padding continues with fresh position
    ids, so it forms a block of its own that no real token attends to.
    """

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in rows)
        batch = {
            "input_ids": torch.full((len(rows), width), self.pad_token_id, dtype=torch.long),
            "labels": torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long),
            "position_ids": torch.zeros((len(rows), width), dtype=torch.long),
        }
        for i, row in enumerate(rows):
            n = len(row["input_ids"])
            batch["input_ids"][i, :n] = torch.tensor(row["input_ids"])
            batch["labels"][i, :n] = torch.tensor(row["labels"])
            batch["position_ids"][i, :n] = torch.tensor(row["position_ids"])
            batch["position_ids"][i, n:] = torch.arange(width - n)
        return batch


class ExampleDataset(torch.utils.data.Dataset):
    """One item per example (no packing), for methods where packing is not correct."""

    def __init__(self, examples: Sequence[Encoded]) -> None:
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict:
        e = self.examples[index]
        return {"input_ids": e.input_ids, "labels": e.labels}


class PaddingCollator:
    """Pads a batch of examples on the right, with an attention mask."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(item["input_ids"]) for item in items)
        batch = {
            "input_ids": torch.full((len(items), width), self.pad_token_id, dtype=torch.long),
            "labels": torch.full((len(items), width), IGNORE_INDEX, dtype=torch.long),
            "attention_mask": torch.zeros((len(items), width), dtype=torch.long),
        }
        for i, item in enumerate(items):
            n = len(item["input_ids"])
            batch["input_ids"][i, :n] = torch.tensor(item["input_ids"])
            batch["labels"][i, :n] = torch.tensor(item["labels"])
            batch["attention_mask"][i, :n] = 1
        return batch
