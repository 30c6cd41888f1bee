"""Training the draft heads (`draft_heads`) on a variant's own hidden states, in torch.

Each position i of a training sequence (with three tokens after it) is one example: the
final hidden state at i and the token at i+1 go in, the token at i+2 is head 1's target; head
2 also gets the token at i+2 and predicts i+3. Teacher-forced, as the runtime feeds the
tokens the model chose. The targets are restricted to the VOCABULARY most frequent ones (the
rest form one "no guess" class), which keeps the heads' output layers small: they run in
every decoding pass.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from tuneloop.optimize.draft_heads import HEAD_MIN_PROB, DraftHeads

log = logging.getLogger(__name__)

VOCABULARY = 4096
"""Most tokens the heads can guess: the most frequent targets of the training text."""
HELD_OUT = 0.1
"""Share of the sequences kept out of training to report how often the guesses are right."""


class Head(torch.nn.Module):
    """Linear -> SiLU -> Linear over [hidden state, embeddings of the input tokens]."""

    def __init__(self, table: torch.Tensor, tokens: int, size: int, classes: int) -> None:
        super().__init__()
        self.table = table
        self.inner = torch.nn.Linear(table.shape[1] * (1 + tokens), size)
        self.outer = torch.nn.Linear(size, classes)

    def forward(self, state: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        embedded = [self.table[tokens[:, k]] for k in range(tokens.shape[1])]
        features = torch.cat([state, *embedded], dim=-1)
        return self.outer(torch.nn.functional.silu(self.inner(features)))

    def arrays(self) -> dict[str, np.ndarray]:
        """The weights as the graph's MatMuls take them ([in, out])."""
        weights = {
            "w1": self.inner.weight.T,
            "b1": self.inner.bias,
            "w2": self.outer.weight.T,
            "b2": self.outer.bias,
        }
        return {k: np.ascontiguousarray(v.detach().numpy()) for k, v in weights.items()}


def train_heads(
    sequences: list[list[int]],
    states: list[np.ndarray],
    embedding: np.ndarray,
    size: int = 512,
    epochs: int = 4,
    seed: int = 0,
) -> DraftHeads:
    """Both heads, fitted on all sequences but the last HELD_OUT share, which measure them."""
    torch.manual_seed(seed)
    held = int(len(sequences) * HELD_OUT) if len(sequences) >= 1 / HELD_OUT else 0
    kept = len(sequences) - held
    train = rows(sequences[:kept], states[:kept])
    vocabulary = most_frequent(train["targets"])
    table = torch.tensor(embedding, dtype=torch.float32)  # a copy: the graph's array is read-only
    heads = [Head(table, tokens, size, len(vocabulary) + 1) for tokens in (1, 2)]
    started = time.perf_counter()
    for number, head in enumerate(heads, 1):
        _fit(head, train, classes(train["targets"][:, number - 1], vocabulary), epochs, number)
    seconds = time.perf_counter() - started
    log.info("draft heads: trained on %d positions in %.0f s", len(train["states"]), seconds)
    record = {
        "size": size,
        "vocabulary": len(vocabulary),
        "sequences": kept,
        "positions": len(train["states"]),
        "epochs": epochs,
    }
    if held:
        record["held_out"] = accuracy(heads, rows(sequences[kept:], states[kept:]), vocabulary)
    return DraftHeads(vocabulary.astype(np.int64), [h.arrays() for h in heads], record)


def rows(sequences: list[list[int]], states: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Per position i with three tokens after it: `states` (state i), `inputs` (tokens i+1,
    i+2) and `targets` (tokens i+2, i+3)."""
    picked, tokens = [], []
    for ids, state in zip(sequences, states, strict=True):
        ids = np.asarray(ids, dtype=np.int64)
        count = len(ids) - 3
        if count > 0:
            picked.append(np.asarray(state[:count], dtype=np.float32))
            tokens.append(np.stack([ids[1 + k : 1 + k + count] for k in range(3)], axis=1))
    if not picked:
        raise ValueError("no sequence has four tokens: nothing to train draft heads on")
    tokens = np.concatenate(tokens)
    return {"states": np.concatenate(picked), "inputs": tokens[:, :2], "targets": tokens[:, 1:]}


def most_frequent(targets: np.ndarray) -> np.ndarray:
    """The VOCABULARY most frequent target tokens, sorted by id."""
    values, counts = np.unique(targets, return_counts=True)
    return np.sort(values[np.argsort(-counts, kind="stable")[:VOCABULARY]])


def classes(targets: np.ndarray, vocabulary: np.ndarray) -> np.ndarray:
    """Class of each target token: its index in the vocabulary, or the last class."""
    index = np.searchsorted(vocabulary, targets).clip(0, len(vocabulary) - 1)
    return np.where(vocabulary[index] == targets, index, len(vocabulary))


def accuracy(heads: list[Head], test: dict, vocabulary: np.ndarray) -> dict[str, float]:
    """Per head, on held-out positions: the share that gets a confident guess, and the share
    of those that are right (head 2 given the true token before, as a kept guess 1 is)."""
    states = torch.from_numpy(test["states"])
    inputs = torch.from_numpy(test["inputs"])
    out = {}
    with torch.no_grad():
        for number, head in enumerate(heads, 1):
            confidence, index = head(states, inputs[:, :number]).softmax(-1).max(-1)
            index = index.numpy()
            sure = (confidence.numpy() >= HEAD_MIN_PROB) & (index < len(vocabulary))
            guess = vocabulary[index.clip(0, len(vocabulary) - 1)]
            right = guess == test["targets"][:, number - 1]
            out[f"head{number}_guessed"] = round(float(sure.mean()), 4)
            out[f"head{number}_right"] = round(float(right[sure].mean()) if sure.any() else 0.0, 4)
    return out


def _fit(head: Head, train: dict, targets: np.ndarray, epochs: int, tokens: int) -> None:
    """AdamW with a one-cycle schedule, batches of 512 positions, or smaller ones for a
    small training set so that every epoch still takes ~32 steps."""
    states = torch.from_numpy(train["states"])
    inputs = torch.from_numpy(train["inputs"][:, :tokens])
    targets = torch.from_numpy(targets)
    batch = min(512, max(16, len(targets) // 32))
    steps = max(1, epochs * -(-len(targets) // batch))
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 2e-3, total_steps=steps)
    for _ in range(epochs):
        for chunk in torch.randperm(len(targets)).split(batch):
            loss = torch.nn.functional.cross_entropy(
                head(states[chunk], inputs[chunk]), targets[chunk]
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
