"""Resolving --base: embedded alias, local folder, hub id, and the errors for each."""

from __future__ import annotations

import pytest
import torch

from tuneloop.base_model import ResolvedBase, load_model, load_tokenizer, resolve_base
from tuneloop.errors import ModelLoadError, ModelNotFoundError


def test_local_folder(tiny_model_dir, smollm2_tokenizer):
    resolved = resolve_base(str(tiny_model_dir))
    assert resolved == ResolvedBase(str(tiny_model_dir), tiny_model_dir.resolve(), "local")
    model, tokenizer = load_model(resolved), load_tokenizer(resolved)
    assert tokenizer.eos_token_id == smollm2_tokenizer.eos_token_id
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    ids = tokenizer("hello there", return_tensors="pt").input_ids
    with torch.inference_mode():
        logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], len(tokenizer))


def test_folder_without_config(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        resolve_base(str(tmp_path))


def test_pickle_weights_are_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelLoadError, match="pytorch_model.bin: pickle files are never loaded"):
        resolve_base(str(tmp_path))


def test_file_is_not_a_model(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(ModelNotFoundError, match="is a file"):
        resolve_base(str(weights))


def test_unreachable_hub_names_the_model_id(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelNotFoundError, match="'no-such-org/no-such-model@v2'.*Offline"):
        resolve_base("no-such-org/no-such-model@v2")


def test_nonsense_spec_says_what_is_accepted():
    with pytest.raises(ModelNotFoundError, match="neither a folder, an embedded alias"):
        resolve_base("not a model")


def test_alias_is_case_insensitive(embedded_model_dir):
    assert resolve_base("SmolLM2-135M-Instruct").path == embedded_model_dir
