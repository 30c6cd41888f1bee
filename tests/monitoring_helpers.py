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


def make_served_adapter(folder: Path, *, samples: int = 64, max_tokens: int = 24) -> Path:
    """Write a zero LoRA adapter, its manifest and a reference profile into `folder`."""
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
    chosen = random.Random(1).sample(range(len(prompt_ids)), samples)
    with torch.inference_mode():
        profile_samples = [
            _sample(model, tokenizer, prompt_ids[i], max_tokens) for i in sorted(chosen)
        ]
    profile = build_profile(
        profile_samples,
        training_prompts=prompt_ids,
        special_token_ids=tokenizer.all_special_ids,
        base=base_fingerprint(resolved),
    )
    profile.save(folder / "reference_profile.json")
    return folder


def _sample(model, tokenizer, prompt: list[int], max_tokens: int):
    """One reference sample: the prompt, and the greedy answer the server would generate."""
    import torch

    from tuneloop.drift_profile import ReferenceSample

    ids = torch.tensor([prompt])
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=max_tokens,
        do_sample=False,
        output_scores=True,
        output_hidden_states=True,
        return_dict_in_generate=True,
        pad_token_id=tokenizer.pad_token_id,
    )
    generated = out.sequences[0, len(prompt) :].tolist()
    logprobs = [
        float(torch.log_softmax(scores[0].float(), -1)[token])
        for scores, token in zip(out.scores, generated, strict=True)
    ]
    # The prefill step's last layer (after the final norm), averaged over the prompt positions.
    prompt_hidden = out.hidden_states[0][-1][0]
    return ReferenceSample(
        prompt_ids=prompt,
        completion_tokens=len(generated),
        completion_logprob=sum(logprobs) / len(logprobs),
        embedding=prompt_hidden.float().mean(0).tolist(),
    )
