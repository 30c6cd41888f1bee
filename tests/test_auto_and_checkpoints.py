"""The `auto` hyperparameter rules, and which checkpoints count as complete."""

from __future__ import annotations

import pytest

from tuneloop.train.auto import auto_batch_size, auto_epochs, auto_learning_rate, openai_epochs
from tuneloop.train.checkpoints import MARKER, latest_complete, mark_complete


@pytest.mark.parametrize(
    ("examples", "epochs"),
    [(10, 10), (20, 5), (34, 3), (1000, 3), (8333, 3), (8334, 2), (10_000, 2), (30_000, 1)],
)
def test_openai_epoch_rule(examples, epochs):
    assert openai_epochs(examples).value == epochs


def test_token_budget_caps_auto_epochs_and_says_so():
    uncapped = auto_epochs(1000, tokens_per_epoch=100_000, token_budget=None)
    assert uncapped.value == 3 and "capped" not in uncapped.reason
    capped = auto_epochs(1000, tokens_per_epoch=100_000, token_budget=150_000)
    assert capped.value == 1.5 and "capped to 1.50 epochs by the token budget" in capped.reason


def test_batch_and_learning_rate_rules():
    assert auto_batch_size(50).value == 4 and auto_batch_size(1000).value == 8
    assert auto_batch_size(100_000).value == 64
    assert auto_learning_rate("lora", 16).value == pytest.approx(1e-3)
    assert auto_learning_rate("lora", 4).value == pytest.approx(5e-4)
    assert auto_learning_rate("full", 16).value < auto_learning_rate("lora", 16).value


def test_only_complete_checkpoints_count(tmp_path):
    for step in (2, 4, 6):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "optimizer.pt").write_bytes(b"x" * 10)
    mark_complete(tmp_path / "checkpoint-2")
    mark_complete(tmp_path / "checkpoint-4")  # checkpoint-6: killed while saving
    assert latest_complete(tmp_path) == tmp_path / "checkpoint-4"
    assert (tmp_path / "incomplete-checkpoint-6" / "optimizer.pt").is_file()
    assert (tmp_path / "checkpoint-4" / MARKER).is_file()
    assert latest_complete(tmp_path / "missing") is None
