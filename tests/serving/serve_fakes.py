"""A deterministic fake model for scheduler tests: its KV cache holds the token ids themselves.

The next token is a hash of every real token of the row (read back through the cache and the
attention mask) and of the row's adapter, so any mistake in padding, row order, cache
alignment or adapter routing changes the output. Positions are checked on every call.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tuneloop.serve.backends.base import ForwardInput, ModelInfo

VOCAB = 40
EOS = 0


def next_token(tokens: list[int], adapter: str | None) -> int:
    """The fake model's greedy choice after `tokens` (never EOS unless the sum says so)."""
    salt = sum(map(ord, adapter)) if adapter else 0
    return (sum((i + 1) * t for i, t in enumerate(tokens)) * 7 + salt + len(tokens)) % VOCAB


def reference(prompt: list[int], steps: int, adapter: str | None = None) -> list[int]:
    """What one request alone must generate (stopping at EOS)."""
    tokens, out = list(prompt), []
    for _ in range(steps):
        token = next_token(tokens, adapter)
        if token == EOS:
            break
        out.append(token)
        tokens.append(token)
    return out


class FakeTokenizer:
    """Token i decodes to one character; 0 is the end token and decodes to nothing."""

    eos_token_id = EOS

    def __len__(self) -> int:
        return VOCAB

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [1 + ord(c) % (VOCAB - 1) for c in text]

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        return "".join(chr(ord("a") + (i % 26)) if i else "" for i in ids)


class FakeBackend:
    def __init__(self, adapters=()) -> None:
        self.tokenizer = FakeTokenizer()
        self.eos_token_ids = frozenset({EOS})
        self.info = ModelInfo("fake", "fake", "int", Path("."), 10_000)
        self._adapters = list(adapters)
        self.calls: list[tuple[int, int]] = []
        """(rows, tokens) of every forward call."""
        self.fail_next = False

    @property
    def adapters(self) -> list[str]:
        return self._adapters

    def forward(self, batch: ForwardInput):
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("simulated model failure")
        rows, width = batch.input_ids.shape
        self.calls.append((rows, width))
        past = batch.past[0][0][:, 0, :, 0].long() if batch.past else torch.zeros((rows, 0))
        full = torch.cat([past.long(), batch.input_ids], dim=1)
        assert full.shape == batch.attention_mask.shape
        logits = torch.full((rows, VOCAB), -10.0)
        for row in range(rows):
            real = full[row][batch.attention_mask[row] == 1].tolist()
            expected_position = len(real) - 1
            if batch.attention_mask[row, -1] == 1:
                assert int(batch.position_ids[row, -1]) == expected_position
            adapter = batch.adapters[row] if batch.adapters else None
            logits[row, next_token(real, adapter)] = 10.0
        cache = full[:, None, :, None].float()
        return logits, [(cache, cache.clone())]


def fake_state(settings, backend=None, *, name: str = "fake", registry=None):
    """A ServerState whose engine runs `backend` (a FakeBackend by default), started and ready.

    Stop it with `state.engine.stop()`.
    """
    from prometheus_client import CollectorRegistry

    from tuneloop.serve.batch_runner import BatchRunner
    from tuneloop.serve.engine import Engine
    from tuneloop.serve.lanes import Lane
    from tuneloop.serve.loading import scheduler_limits
    from tuneloop.serve.metrics import Metrics
    from tuneloop.serve.scheduler import Scheduler
    from tuneloop.serve.state import ServerState

    backend = backend or FakeBackend()
    limits = scheduler_limits(settings)
    lane = Lane(name, backend, Scheduler(name, BatchRunner(backend), limits))
    metrics = Metrics(registry if registry is not None else CollectorRegistry())
    metrics.add_model(name, None, {"backend": "fake"})
    for adapter in backend.adapters:
        metrics.add_model(name, adapter, {"backend": "fake"})
    engine = Engine([lane], observers=[metrics])
    state = ServerState.from_settings(settings, metrics)
    state.engine, state.ready = engine, True
    engine.start()
    return state
