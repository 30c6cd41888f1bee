"""Lanes: each loaded model with its scheduler, and the served model ids that lead to them.

A lane is one model that runs its own batch: the torch base model with all its LoRA adapters
(requests for any of them share one batch), a merged model, or one ONNX variant. A served
model id names a lane and, optionally, an adapter on it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from tuneloop.serve.backends.base import ModelBackend
from tuneloop.serve.errors import ModelNotLoaded, ModelNotServed
from tuneloop.serve.scheduler import Scheduler


@dataclass(frozen=True)
class ModelSpec:
    """What to load for one lane; `BACKENDS[backend](spec)` loads it."""

    name: str
    """The served model id of the model itself."""
    backend: str
    path: str | Path
    """For torch, anything `--base` accepts; for onnx, the variant folder."""
    adapters: dict[str, Path] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    """More served ids for the same model (an optimized adapter's bare NAME)."""
    device: str = "auto"
    dtype: str = "auto"
    quantization: str = "none"
    threads: int | None = None
    precision: str | None = None
    """Recorded precision of an optimized variant (fp32, int8, int4, ...)."""
    base_label: str | None = None
    """What the model was made from, for `tuneloop_model_info` (e.g. the base of a variant)."""


@dataclass
class Lane:
    name: str
    backend: ModelBackend
    scheduler: Scheduler
    aliases: tuple[str, ...] = ()
    retiring: set[str] = field(default_factory=set)
    """Adapters being unloaded: no new requests, running ones finish first."""

    @property
    def tokenizer(self):
        return self.backend.tokenizer

    @functools.cached_property
    def vocab_size(self) -> int:
        """Token ids the tokenizer knows, added tokens included. Cached: `len(tokenizer)` of a
        fast tokenizer copies its whole vocabulary (tens of milliseconds per request)."""
        return len(self.tokenizer)

    def served_ids(self) -> dict[str, str | None]:
        """Served model id -> adapter name (None: the lane's model itself)."""
        ids: dict[str, str | None] = {self.name: None}
        ids.update(dict.fromkeys(self.aliases))
        ids.update({a: a for a in self.backend.adapters if a not in self.retiring})
        return ids


class ServedModels:
    """Resolve the `model` field of a request to a lane and adapter."""

    def __init__(self, lanes: list[Lane]) -> None:
        self.lanes = lanes
        self.not_loaded: dict[str, str] = {}
        """Model ids the server was asked to serve but could not load -> why (see /ready)."""

    def resolve(self, model: str) -> tuple[Lane, str | None]:
        for lane in self.lanes:
            ids = lane.served_ids()
            if model in ids:
                return lane, ids[model]
        if model in self.not_loaded:
            raise ModelNotLoaded(
                f"The model '{model}' is configured but failed to load: "
                f"{self.not_loaded[model]} (GET /ready lists the models that failed)",
                param="model",
            )
        known = ", ".join(sorted(self.ids())) or "none"
        raise ModelNotServed(
            f"The model '{model}' does not exist on this server (served: {known})",
            param="model",
        )

    def ids(self) -> dict[str, tuple[Lane, str | None]]:
        return {
            model: (lane, adapter)
            for lane in self.lanes
            for model, adapter in lane.served_ids().items()
        }

    def lane_named(self, name: str) -> Lane:
        for lane in self.lanes:
            if lane.name == name:
                return lane
        raise ModelNotServed(f"no model named {name!r} is loaded", param="model")
