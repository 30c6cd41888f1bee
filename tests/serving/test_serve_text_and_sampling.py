"""Incremental detokenizing, stop strings across tokens, and per-row sampling."""

from __future__ import annotations

import torch

from tuneloop.serve.sampling import RowSampling, make_generator, sample
from tuneloop.serve.text_stream import TextStream


def stream_text(tokenizer, ids, stop=()) -> tuple[list[str], TextStream]:
    stream = TextStream(tokenizer, stop)
    deltas = [stream.push(i) for i in ids]
    deltas.append(stream.flush())
    return deltas, stream


def test_deltas_add_up_to_the_full_decode_without_broken_characters(smollm2_tokenizer):
    text = "Ça coûte 12 € 😀 — 日本語 ok"
    ids = smollm2_tokenizer.encode(text, add_special_tokens=False)
    deltas, _ = stream_text(smollm2_tokenizer, ids)
    assert "".join(deltas) == smollm2_tokenizer.decode(ids) == text
    assert all("\ufffd" not in d for d in deltas)
    assert any(d == "" for d in deltas), "the emoji's byte tokens must be held back"


def test_stop_string_split_over_tokens_is_cut_and_never_sent(smollm2_tokenizer):
    text = "Your order ships tomorrow. END_OF_ANSWER and more text"
    ids = smollm2_tokenizer.encode(text, add_special_tokens=False)
    deltas, stream = stream_text(smollm2_tokenizer, ids, stop=["END_OF_ANSWER"])
    assert "".join(deltas) == "Your order ships tomorrow. "
    assert stream.stopped
    assert not any("END" in d for d in deltas)


def test_text_that_only_looked_like_a_stop_string_is_released(smollm2_tokenizer):
    text = "an ENDING, not the end"
    ids = smollm2_tokenizer.encode(text, add_special_tokens=False)
    deltas, stream = stream_text(smollm2_tokenizer, ids, stop=["END_OF"])
    assert "".join(deltas) == text and not stream.stopped


def test_special_tokens_are_not_sent(smollm2_tokenizer):
    ids = smollm2_tokenizer.encode("hi", add_special_tokens=False) + [1, 2]
    deltas, _ = stream_text(smollm2_tokenizer, ids)
    assert "".join(deltas) == "hi"


def test_greedy_rows_take_the_argmax_and_sampled_rows_follow_their_seed():
    logits = torch.randn(3, 50)
    greedy = RowSampling(0.0, 1.0, None)
    tokens = sample(logits, [greedy, RowSampling(1.0, 1.0, make_generator(7)), greedy])
    assert tokens[0] == int(logits[0].argmax()) and tokens[2] == int(logits[2].argmax())
    again = sample(logits, [greedy, RowSampling(1.0, 1.0, make_generator(7)), greedy])
    assert again == tokens


def test_top_p_keeps_only_the_nucleus():
    logits = torch.tensor([[5.0, 4.0, -10.0, -10.0, -10.0]])
    seen = {sample(logits, [RowSampling(1.0, 0.5, make_generator(seed))])[0] for seed in range(50)}
    assert seen == {0}, "top_p 0.5 keeps the most likely token only"
    seen = {
        sample(logits, [RowSampling(1.0, 0.99, make_generator(seed))])[0] for seed in range(200)
    }
    assert seen == {0, 1}


def test_temperature_flattens_the_distribution():
    logits = torch.tensor([[2.0, 0.0]])
    hot = [sample(logits, [RowSampling(2.0, 1.0, make_generator(s))])[0] for s in range(400)]
    cold = [sample(logits, [RowSampling(0.3, 1.0, make_generator(s))])[0] for s in range(400)]
    assert hot.count(1) > cold.count(1) * 5
