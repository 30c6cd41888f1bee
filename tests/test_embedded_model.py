"""The real embedded model: converted from its GGUF, special tokens fixed, answers sensibly."""

from __future__ import annotations

import pytest
import torch

from tuneloop import embedded
from tuneloop.base_model import load_model, load_tokenizer, resolve_base

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fresh_conversion(tmp_path_factory):
    """Convert into an empty cache, as on a new machine (the shared cache is left alone)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TUNELOOP_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        resolved = resolve_base()
        yield resolved, load_tokenizer(resolved), load_model(resolved)


def test_special_tokens_follow_the_gguf_metadata(fresh_conversion):
    _, tokenizer, model = fresh_conversion
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.eos_token_id == 2
    assert tokenizer.pad_token_id not in (None, 2)  # id 2 closes every chat turn
    assert tokenizer("hello").input_ids == tokenizer("hello", add_special_tokens=False).input_ids
    assert model.generation_config.eos_token_id == 2
    assert model.config.tie_word_embeddings


def test_chat_template_and_round_trip(fresh_conversion):
    _, tokenizer, _ = fresh_conversion
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
    assert prompt.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    text = "Ünïcödé ▁ spaces  and\ttabs — 🙂"
    assert tokenizer.decode(tokenizer(text).input_ids) == text


def test_answers_a_chat_prompt_and_stops(fresh_conversion):
    _, tokenizer, model = fresh_conversion
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=64, do_sample=False)
    new_tokens = output[0, inputs["input_ids"].shape[1] :]
    assert "Paris" in tokenizer.decode(new_tokens, skip_special_tokens=True)
    # It stopped at the end token well before the limit: the end token is right.
    assert new_tokens[-1].item() == 2 and len(new_tokens) < 64


def test_second_load_reuses_the_conversion(fresh_conversion, monkeypatch):
    resolved, _, _ = fresh_conversion
    monkeypatch.setenv("TUNELOOP_CACHE_DIR", str(resolved.path.parents[1]))

    def no_conversion(*args):
        raise AssertionError("converted again although the cache is complete")

    monkeypatch.setattr(embedded, "convert_gguf", no_conversion)
    again = resolve_base()
    assert again.path == resolved.path
    load_model(again)
