"""The drift reference profile of a trained model's training split (see tuneloop.drift_profile).

Prompt lengths and the rare-token set use every training example (tokenizing is cheap). The
model-based features (completion log-probability, prompt embedding) need a forward pass, so
they use a seeded sample of `profile_examples` examples, run packed without gradients.
"""

from __future__ import annotations

import random

import torch

from tuneloop.drift_profile import ReferenceProfile, ReferenceSample, build_profile
from tuneloop.progress import bar
from tuneloop.train.encoding import IGNORE_INDEX, Encoded
from tuneloop.train.packing import pack_rows


@torch.inference_mode()
def reference_profile(
    model,
    tokenizer,
    encoded: list[Encoded],
    *,
    sample: int,
    seed: int,
    base: dict,
    pack_length: int = 1024,
) -> ReferenceProfile:
    """Profile of `encoded` (the training split) under `model` (PEFT-wrapped or plain)."""
    chosen = sorted(random.Random(seed).sample(range(len(encoded)), min(sample, len(encoded))))
    examples = [encoded[i] for i in chosen]
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    was_training = causal_lm.training
    causal_lm.eval()
    samples: dict[int, ReferenceSample] = {}
    rows = pack_rows([len(e) for e in examples], pack_length, seed)
    for row in bar(rows, desc="drift reference profile", unit="row"):
        features = _row_features(causal_lm, [examples[i] for i in row])
        for index, sample_features in zip(row, features, strict=True):
            samples[index] = sample_features
    causal_lm.train(was_training)
    return build_profile(
        [samples[i] for i in range(len(examples))],
        training_prompts=[e.input_ids[: e.prompt_length] for e in encoded],
        special_token_ids=tokenizer.all_special_ids,
        base=base,
    )


def _row_features(causal_lm, members: list[Encoded]) -> list[ReferenceSample]:
    ids = torch.tensor([[t for e in members for t in e.input_ids]])
    positions = torch.tensor([[p for e in members for p in range(len(e))]])
    decoder = causal_lm.get_decoder()
    hidden = decoder(input_ids=ids, position_ids=positions, use_cache=False).last_hidden_state[0]
    head = causal_lm.get_output_embeddings()
    out, offset = [], 0
    for e in members:
        h = hidden[offset : offset + len(e)].float()
        # the last answer: labelled tokens after the prompt (its text and end-of-turn token)
        targets = [i for i in range(e.prompt_length, len(e)) if e.labels[i] != IGNORE_INDEX]
        logprob = None
        if targets:
            logits = head(h[[i - 1 for i in targets]].to(head.weight.dtype)).float()
            token_ids = torch.tensor([e.input_ids[i] for i in targets])
            logprobs = torch.log_softmax(logits, -1).gather(1, token_ids[:, None])
            logprob = float(logprobs.mean())
        out.append(
            ReferenceSample(
                prompt_ids=e.input_ids[: e.prompt_length],
                completion_tokens=len(targets),
                completion_logprob=logprob,
                embedding=h[: e.prompt_length].mean(0).tolist(),
            )
        )
        offset += len(e)
    return out
