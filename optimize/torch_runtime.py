"""PyTorch backend for the decode loop in `runtime`: eager transformers models with a KV cache.

This is the fp32 reference every variant is compared with, and the backend of the bitsandbytes
variants (`bnb-int8`, `bnb-nf4`), whose folders carry their `quantization_config`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tuneloop.errors import MissingDependencyError, ModelLoadError
from tuneloop.optimize.runtime import CausalLM, folder_tokenizer, position_ids


class TorchCausalLM(CausalLM):
    backend = "torch"

    def __init__(self, folder: Path, tokenizer, model) -> None:
        super().__init__(folder, tokenizer)
        self.model = model

    @classmethod
    def load(cls, folder: Path, threads: int | None = None) -> TorchCausalLM:
        import torch
        from transformers import AutoModelForCausalLM

        if threads:
            torch.set_num_threads(threads)
        config = json.loads((Path(folder) / "config.json").read_text())
        if "quantization_config" in config:
            _require_bitsandbytes(folder)
        try:
            model = AutoModelForCausalLM.from_pretrained(
                folder, dtype=torch.float32, use_safetensors=True, device_map="cpu"
            )
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot load model from {folder}: {exc}") from exc
        return cls(folder, folder_tokenizer(folder), model.eval())

    def new_state(self, batch_size: int):
        from transformers import DynamicCache

        return DynamicCache()

    def forward(self, input_ids: np.ndarray, attention_mask: np.ndarray, state):
        import torch

        positions = position_ids(attention_mask, input_ids.shape[1])
        with torch.inference_mode():
            out = self.model(
                input_ids=torch.from_numpy(input_ids),
                attention_mask=torch.from_numpy(attention_mask),
                position_ids=torch.from_numpy(positions),
                past_key_values=state,
                use_cache=True,
            )
        return out.logits.float().numpy(), out.past_key_values


def _require_bitsandbytes(folder: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        raise MissingDependencyError(
            f"{folder} is quantized with bitsandbytes, which is not installed: "
            "pip install 'tuneloop[gpu]' (or pip install bitsandbytes)"
        )
