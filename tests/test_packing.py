"""Packing keeps examples apart, and the selective loss equals the ordinary one."""

from __future__ import annotations

import torch

from tuneloop.train.encoding import IGNORE_INDEX, encode
from tuneloop.train.packing import PackedCollator, PackedDataset, PaddingCollator, pack_rows
from tuneloop.train.trainer import selective_loss

CONVERSATIONS = [
    [
        {"role": "user", "content": f"Where is my order number {i}? " + "It is late. " * (i % 4)},
        {"role": "assistant", "content": f'{{"category": "shipping", "reply": "Checking {i}."}}'},
    ]
    for i in range(6)
]


def per_example_losses(model, ids, labels, **kwargs):
    """Cross-entropy of each labelled token, from one forward pass (as tuneloop calls it)."""
    logits = model(input_ids=ids, use_cache=False, **kwargs).logits.float()
    targets = labels[:, 1:]
    losses = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]),
        targets.reshape(-1),
        reduction="none",
        ignore_index=IGNORE_INDEX,
    )
    return losses.view(targets.shape)


def test_packed_loss_equals_unpacked_loss(tiny_model, smollm2_tokenizer):
    encoded = [encode(smollm2_tokenizer, c) for c in CONVERSATIONS]
    with torch.no_grad():
        alone = []
        for e in encoded:
            losses = per_example_losses(
                tiny_model, torch.tensor([e.input_ids]), torch.tensor([e.labels])
            )
            alone.append(losses.sum().item())
        dataset = PackedDataset(encoded, capacity=10_000, seed=0)
        assert len(dataset) == 1  # everything in one row
        batch = PackedCollator(smollm2_tokenizer.pad_token_id)([dataset[0]])
        packed = per_example_losses(
            tiny_model,
            batch["input_ids"],
            batch["labels"],
            position_ids=batch["position_ids"],
        )[0]
    offset = 0
    for index in dataset.rows[0]:
        n = len(encoded[index])
        # the last token of an example predicts the next example's first token: unlabelled
        example_loss = packed[offset : offset + n - 1].sum().item()
        assert abs(example_loss - alone[index]) < 1e-4 * alone[index]
        offset += n


def test_without_restarting_positions_or_with_a_cache_examples_would_leak(
    tiny_model, smollm2_tokenizer
):
    """The check above can fail: cross-example attention changes the losses."""
    encoded = [encode(smollm2_tokenizer, c) for c in CONVERSATIONS[:2]]
    ids = torch.tensor([encoded[0].input_ids + encoded[1].input_ids])
    labels = torch.tensor([encoded[0].labels + encoded[1].labels])
    positions = torch.tensor([list(range(len(encoded[0]))) + list(range(len(encoded[1])))])
    second = slice(len(encoded[0]), None)
    with torch.no_grad():
        alone = per_example_losses(
            tiny_model, torch.tensor([encoded[1].input_ids]), torch.tensor([encoded[1].labels])
        ).sum()
        leaky = per_example_losses(tiny_model, ids, labels)[0, second].sum()
        assert abs(leaky - alone) > 1e-4 * alone  # one long sequence: attends across
        # restarting positions but with the config's default KV cache: the mask stays causal
        logits = tiny_model(input_ids=ids, position_ids=positions).logits[0, second]
        apart = tiny_model(input_ids=ids, position_ids=positions, use_cache=False).logits[0, second]
        assert tiny_model.config.use_cache and not torch.allclose(logits, apart, atol=1e-4)


def test_selective_loss_matches_full_logits(tiny_model, smollm2_tokenizer):
    encoded = [encode(smollm2_tokenizer, c) for c in CONVERSATIONS]
    dataset = PackedDataset(encoded, capacity=10_000, seed=0)
    batch = PackedCollator(smollm2_tokenizer.pad_token_id)([dataset[0]])
    with torch.no_grad():
        full = tiny_model(
            input_ids=batch["input_ids"],
            position_ids=batch["position_ids"],
            labels=batch["labels"],
            use_cache=False,
        ).loss
        targets = batch["labels"][0, 1:]
        keep = (targets != IGNORE_INDEX).nonzero().squeeze(1)
        logits = tiny_model(
            input_ids=batch["input_ids"],
            position_ids=batch["position_ids"],
            logits_to_keep=keep,
            use_cache=False,
        ).logits[0]
        assert logits.shape[0] == keep.numel() < batch["input_ids"].shape[1] / 2
        assert torch.allclose(selective_loss(logits, targets[keep]), full, atol=1e-5)


def test_pack_rows_respects_capacity_and_keeps_every_example():
    lengths = [100, 300, 50, 480, 20, 700, 130, 90]
    rows = pack_rows(lengths, capacity=512, seed=3)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    for row in rows:
        assert sum(lengths[i] for i in row) <= 512 or len(row) == 1
    assert pack_rows(lengths, 512, seed=3) == rows  # deterministic


def test_padding_collator_masks_padding(smollm2_tokenizer):
    collate = PaddingCollator(smollm2_tokenizer.pad_token_id)
    batch = collate(
        [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8], "labels": [8]}]
    )
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"][1].tolist() == [8, IGNORE_INDEX, IGNORE_INDEX]
