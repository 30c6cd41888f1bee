"""Shared fixtures: the real SmolLM2 tokenizer and tiny random Llama models built on it.

Unit tests use tiny models (2 layers, hidden size 64) with the real tokenizer, so they exercise
real chat templates and special tokens in seconds. Tests marked `integration` use the real
embedded model. The converted embedded model is cached in the user's tuneloop cache (or
$TUNELOOP_CACHE_DIR), so only the first run on a machine pays the ~20 s conversion.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Nothing in the test suite may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def embedded_model_dir() -> Path:
    """Folder of the converted embedded model (converted on first use)."""
    from tuneloop.base_model import resolve_base

    return resolve_base().path


@pytest.fixture(scope="session")
def smollm2_tokenizer(embedded_model_dir):
    from tuneloop.base_model import load_tokenizer

    return load_tokenizer(str(embedded_model_dir))


def build_tiny_llama(tokenizer, seed: int = 0, **overrides):
    """A randomly initialised 2-layer Llama sized for `tokenizer`: runs a forward pass in ms."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **overrides,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, smollm2_tokenizer) -> Path:
    """A local model folder (config, safetensors, tokenizer) usable as `--base DIR`."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    build_tiny_llama(smollm2_tokenizer).save_pretrained(folder, safe_serialization=True)
    smollm2_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_model(smollm2_tokenizer):
    return build_tiny_llama(smollm2_tokenizer)
