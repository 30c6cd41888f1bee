"""One small interface over every model variant: teacher-forced logits and greedy generation.

A backend implements two things: `forward` (one call of the model on new tokens plus its cached
state) and nothing else; the loop around it is shared, so torch and ONNX variants are measured
with the same code: 1) pad and prefill the prompts, 2) decode one token per step, 3) stop when
every sequence has ended. Backends register in `BACKENDS`; `load_causal_lm` picks one from the
folder's manifest or files. The server can reuse this module for its own decode path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tuneloop.errors import ModelLoadError


@dataclass
class Generation:
    """What one batched greedy generation produced and how long each phase took."""

    tokens: list[list[int]]
    """The new tokens of each sequence, up to and including its end token."""
    prompt_tokens: int
    prefill_seconds: float
    decode_seconds: float
    decode_steps: int
    """Forward passes after the prefill."""
    decode_tokens: int | None = None
    """Tokens those passes produced, all rows together, when not one per row per pass
    (speculative decoding accepts several per pass)."""
    drafted: int = 0
    accepted: int = 0
    """Draft tokens checked and kept (speculative decoding)."""
    batch_size: int = field(init=False)

    def __post_init__(self) -> None:
        self.batch_size = len(self.tokens)

    @property
    def prefill_tokens_per_s(self) -> float:
        return self.prompt_tokens / self.prefill_seconds if self.prefill_seconds else 0.0

    @property
    def produced(self) -> int:
        """Tokens the decode passes produced, all sequences together."""
        if self.decode_tokens is None:
            return self.decode_steps * self.batch_size
        return self.decode_tokens

    @property
    def decode_tokens_per_s(self) -> float:
        """Tokens produced per second over the decode steps, all sequences together."""
        return self.produced / self.decode_seconds if self.decode_seconds else 0.0


class CausalLM:
    """A loaded model variant; subclasses implement `forward`, `new_state` and `load`."""

    backend = ""

    def __init__(self, folder: Path, tokenizer) -> None:
        self.folder = Path(folder)
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id
        self.eos_ids = _eos_ids(folder, tokenizer)

    def forward(self, input_ids: np.ndarray, attention_mask: np.ndarray, state):
        """Run the model on `input_ids` [B, S] after the cached `state`.

        Returns (logits of the new positions [B, S, V] as float32 numpy, next state).
        """
        raise NotImplementedError

    def new_state(self, batch_size: int):
        raise NotImplementedError

    def sequence_logits(self, ids: list[int]) -> np.ndarray:
        """Logits [T, V] for every position of one unpadded sequence (teacher forcing)."""
        batch = np.asarray([ids], dtype=np.int64)
        logits, _ = self.forward(batch, np.ones_like(batch), self.new_state(1))
        return logits[0]

    def generate(
        self, prompts: list[list[int]], max_new_tokens: int, stop_at_eos: bool = True
    ) -> Generation:
        """Greedy generation for a batch of tokenized prompts (left-padded together)."""
        # 1) pad and prefill
        width = max(len(p) for p in prompts)
        ids = np.array([[self.pad_id] * (width - len(p)) + p for p in prompts], dtype=np.int64)
        mask = np.array([[0] * (width - len(p)) + [1] * len(p) for p in prompts], dtype=np.int64)
        started = time.perf_counter()
        logits, state = self.forward(ids, mask, self.new_state(len(prompts)))
        prefill = time.perf_counter() - started
        # 2) decode one token per step
        tokens: list[list[int]] = [[] for _ in prompts]
        done = np.zeros(len(prompts), dtype=bool)
        next_ids = logits[:, -1].argmax(-1)
        steps, started = 0, time.perf_counter()
        while True:
            for row, token in enumerate(next_ids):
                if not done[row]:
                    tokens[row].append(int(token))
                    done[row] = stop_at_eos and int(token) in self.eos_ids
            # 3) stop when every sequence has ended or the budget is spent
            if done.all() or len(max(tokens, key=len)) >= max_new_tokens:
                break
            mask = np.concatenate([mask, np.ones((len(prompts), 1), dtype=np.int64)], axis=1)
            step_ids = np.where(done, self.pad_id, next_ids)[:, None].astype(np.int64)
            logits, state = self.forward(step_ids, mask, state)
            next_ids = logits[:, -1].argmax(-1)
            steps += 1
        decode = time.perf_counter() - started
        return Generation(tokens, int(mask[:, :width].sum()), prefill, decode, steps)


def position_ids(attention_mask: np.ndarray, new_tokens: int) -> np.ndarray:
    """Positions of the last `new_tokens` columns, counting only real (unpadded) tokens."""
    positions = np.cumsum(attention_mask, axis=1) - 1
    positions = np.where(attention_mask == 0, 1, positions)
    return positions[:, -new_tokens:].astype(np.int64)


def folder_tokenizer(folder: Path):
    """The tokenizer saved in a model folder, with the same padding fix as the base model's."""
    from tuneloop.base_model import ResolvedBase, load_tokenizer

    return load_tokenizer(ResolvedBase(str(folder), Path(folder), "local"))


def _eos_ids(folder: Path, tokenizer) -> set[int]:
    import json

    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    config = Path(folder) / "generation_config.json"
    if config.is_file():
        eos = json.loads(config.read_text()).get("eos_token_id")
        ids.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    return ids


def detect_backend(folder: Path) -> str:
    folder = Path(folder)
    if any(folder.glob("*.onnx")):
        return "onnx"
    if (folder / "config.json").is_file() and any(folder.glob("*.safetensors")):
        return "torch"
    raise ModelLoadError(
        f"{folder} holds neither an ONNX model (*.onnx) nor a transformers model "
        "(config.json + *.safetensors)"
    )


def load_causal_lm(folder: Path, threads: int | None = None) -> CausalLM:
    """Load any variant folder written by the optimize stage (or a plain model folder)."""
    from tuneloop.optimize.ort_runtime import OrtCausalLM
    from tuneloop.optimize.torch_runtime import TorchCausalLM

    backends: dict[str, type[CausalLM]] = {"onnx": OrtCausalLM, "torch": TorchCausalLM}
    return backends[detect_backend(folder)].load(Path(folder), threads)
