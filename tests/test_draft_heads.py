"""Draft heads without a model: which guesses get drafted, and that training learns a rule."""

from __future__ import annotations

import numpy as np

from tuneloop.optimize.draft_head_training import classes, most_frequent, rows, train_heads
from tuneloop.optimize.draft_heads import HEAD_MIN_PROB, guessed


def test_confident_guesses_after_the_token_they_followed_are_drafted():
    ids, sure = np.array([7, 11, 12]), np.array([0.9, 0.8])
    assert guessed(ids, sure, chosen=7) == [11, 12]
    assert guessed(ids, sure, chosen=8) == [], "guesses that followed another token"
    assert guessed(ids, np.array([0.9, HEAD_MIN_PROB / 2]), chosen=7) == [11]
    assert guessed(ids, np.array([HEAD_MIN_PROB / 2, 0.9]), chosen=7) == []
    assert guessed(np.array([7, -1, 12]), sure, chosen=7) == [], "no guess stops the draft"


def test_each_position_teaches_the_two_tokens_after_the_next():
    states = [np.arange(6 * 2, dtype=np.float32).reshape(6, 2)]
    found = rows([[10, 11, 12, 13, 14, 15]], states)
    assert found["states"].tolist() == states[0][:3].tolist()
    assert found["inputs"].tolist() == [[11, 12], [12, 13], [13, 14]]
    assert found["targets"].tolist() == [[12, 13], [13, 14], [14, 15]]
    vocabulary = most_frequent(np.array([[5, 5], [5, 9], [3, 9]]))
    assert vocabulary.tolist() == [3, 5, 9]
    assert classes(np.array([9, 4, 3]), vocabulary).tolist() == [2, 3, 0], "unknown: last class"


def test_training_learns_what_follows_and_reports_held_out_accuracy():
    """Tokens count up by one: the token after the next follows from the next one alone."""
    rng = np.random.default_rng(0)
    embedding = rng.standard_normal((40, 16)).astype(np.float32)
    sequences = [[(start + k) % 40 for k in range(20)] for start in rng.integers(0, 40, 60)]
    states = [embedding[ids] + 0.1 * rng.standard_normal((20, 16)) for ids in sequences]
    heads = train_heads(sequences, states, embedding, size=32, epochs=40)
    held_out = heads.record["held_out"]
    assert held_out["head1_guessed"] > 0.8 and held_out["head1_right"] > 0.95
    assert held_out["head2_guessed"] > 0.8 and held_out["head2_right"] > 0.95
    assert heads.record["sequences"] == 54 and set(heads.vocabulary.tolist()) <= set(range(40))
    w1, w2 = heads.layers[1]["w1"], heads.layers[1]["w2"]
    assert w1.shape == (16 * 3, 32) and w2.shape == (32, len(heads.vocabulary) + 1)
