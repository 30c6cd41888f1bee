"""The one small interface every backend implements: a batched forward pass over a KV cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch

from tuneloop.serve.batch_cache import KV


@dataclass(frozen=True)
class ForwardInput:
    input_ids: torch.Tensor
    """[batch, tokens] int64; rows are left-padded to the same length."""
    attention_mask: torch.Tensor
    """[batch, past + tokens] int64: 1 for real tokens, 0 for padding."""
    position_ids: torch.Tensor
    """[batch, tokens] int64: each token's position in its own sequence."""
    past: KV | None
    """The cache the new tokens extend, or None for a first prefill."""
    adapters: list[str | None] | None = None
    """Per row, the adapter to apply (None: the model itself); None when no row uses one."""


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model is, for /v1/models, logs and the `tuneloop_model_info` metric."""

    name: str
    backend: str
    precision: str
    path: Path
    max_context: int
    """Longest prompt plus completion the model's positions allow."""
    extra: dict[str, str] = field(default_factory=dict)


class ModelBackend(Protocol):
    """A loaded model that runs forward passes for the scheduler.

    `forward` returns the logits of each row's last position [batch, vocab] and the cache
    extended by the new tokens (keys/values [batch, kv_heads, past + tokens, head_dim]).
    Backends that can apply adapters per row also implement `load_adapter`/`unload_adapter`.
    """

    info: ModelInfo
    tokenizer: object
    eos_token_ids: frozenset[int]

    def forward(self, batch: ForwardInput) -> tuple[torch.Tensor, KV]: ...

    @property
    def adapters(self) -> list[str]: ...

    def load_adapter(self, name: str, folder: Path) -> None: ...

    def unload_adapter(self, name: str) -> None: ...
