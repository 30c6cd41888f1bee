"""An adapter for the monitoring tests: served like a trained one, made in seconds.

Training a real adapter takes minutes; drift detection does not need one, only a reference
profile that describes what the served model does on in-distribution prompts. So the adapter is
a LoRA whose B matrices are zero (it answers exactly as the base model), and its profile is
built the way `tuneloop train` builds one, except that the reference completions are the
model's own greedy answers (what a well-trained adapter reproduces). The support tickets held
out of the profile are the in-distribution traffic of the tests.
"""

from __future__ import annotations

import random
from pathlib import Path

ADAPTER_NAME = "support-triage"
HELD_OUT = 200
"""Demo tickets kept out of the profile: the in-distribution traffic of the tests."""


def demo_prompts() -> tuple[list[list[dict]], list[list[dict]]]:
    """(reference prompts, held-out prompts): demo conversations without the answer."""
    from tuneloop.data_formats import read_examples
    from tuneloop.demo import DEMO_DATA

    examples = [ex["messages"] for ex in read_examples(DEMO_DATA)]
    random.Random(0).shuffle(examples)
    prompts = [[m for m in messages if m["role"] != "assistant"] for messages in examples]
    return prompts[HELD_OUT:], prompts[:HELD_OUT]


def make_served_adapter(folder: Path, *, samples: int = 256, max_tokens: int = 16) -> Path:
    """Write a zero LoRA adapter, its manifest and a reference profile into `folder`.

    `samples` reference answers of `max_tokens` greedy tokens: enough that in-distribution
    windows of a couple of hundred requests score well under the alert threshold (PSI noise
    over 10 bins is about 9 * (1/window + 1/samples)).
    """
    import torch
    from peft import LoraConfig, get_peft_model

    from tuneloop.base_model import load_model, load_tokenizer, resolve_base
    from tuneloop.drift_profile import build_profile
    from tuneloop.train.manifest import base_fingerprint, write_manifest

    resolved = resolve_base()
    tokenizer = load_tokenizer(resolved)
    model = load_model(resolved).eval()
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    folder.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(folder, safe_serialization=True)
    task = {"output": "json", "label_field": "category", "labels": []}
    write_manifest(folder, name=ADAPTER_NAME, method="lora", resolved=resolved, task=task)

    reference, _ = demo_prompts()
    prompt_ids = [
        tokenizer.apply_chat_template(messages, add_generation_prompt=True)
        for messages in reference
    ]
    chosen = sorted(random.Random(1).sample(range(len(prompt_ids)), samples))
    base_model = peft_model.get_base_model()
    profile_samples = []
    with torch.inference_mode():
        for start in range(0, len(chosen), BATCH):
            batch = [prompt_ids[i] for i in chosen[start : start + BATCH]]
            profile_samples += _samples(base_model, tokenizer, batch, max_tokens)
    profile = build_profile(
        profile_samples,
        training_prompts=prompt_ids,
        special_token_ids=tokenizer.all_special_ids,
        base=base_fingerprint(resolved),
    )
    profile.save(folder / "reference_profile.json")
    return folder


BATCH = 32


def _samples(model, tokenizer, prompts: list[list[int]], max_tokens: int) -> list:
    """Reference samples of a batch: each prompt and the greedy answer the server generates."""
    import torch

    from tuneloop.drift_profile import ReferenceSample

    width = max(map(len, prompts))
    pad = tokenizer.pad_token_id
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])  # left padding
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    out = model.generate(
        ids,
        attention_mask=mask,
        max_new_tokens=max_tokens,
        do_sample=False,
        output_scores=True,
        output_hidden_states=True,
        return_dict_in_generate=True,
        pad_token_id=pad,
    )
    # The prefill's last layer (after the final norm), averaged over each prompt's positions.
    prefill = out.hidden_states[0][-1].float()
    logprobs = torch.stack([torch.log_softmax(s.float(), -1) for s in out.scores], 1)
    generated = out.sequences[:, width:]
    found = []
    for row, prompt in enumerate(prompts):
        tokens = generated[row].tolist()
        stopped = tokenizer.eos_token_id in tokens
        if stopped:  # the server stops at the end of turn, inclusive
            tokens = tokens[: tokens.index(tokenizer.eos_token_id) + 1]
        chosen = [float(logprobs[row, step, token]) for step, token in enumerate(tokens)]
        found.append(
            ReferenceSample(
                prompt_ids=prompt,
                # the server counts only answers that ended on their own, not cut at max_tokens
                completion_tokens=len(tokens) if stopped else None,
                completion_logprob=sum(chosen) / len(chosen),
                embedding=prefill[row, width - len(prompt) :].mean(0).tolist(),
            )
        )
    return found
