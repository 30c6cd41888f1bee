"""A quick `support-triage` LoRA adapter and data splits, for measuring the optimize stage alone.

`tuneloop train` is the real way to make an adapter; this script exists so the optimize figures
in the README can be reproduced without it: a deterministic 80/10/10 split of the demo data and
a short plain-PEFT LoRA run (r=16 on all linear layers, loss on the answer only), written as an
adapter folder with the `tuneloop_adapter.json` manifest that `tuneloop train` writes.

Run: `python -m tuneloop.bench.quick_adapter --out bench-results/quick-adapter [--steps 30]`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import time
from pathlib import Path

from tuneloop import __version__
from tuneloop.base_model import DEFAULT_BASE, load_model, load_tokenizer, resolve_base
from tuneloop.data_formats import prompt_and_completion, read_examples
from tuneloop.demo import DEMO_DATA

LABELS = ["account", "billing", "returns", "shipping", "technical"]


def split_demo(out: Path, seed: int = 0) -> dict[str, Path]:
    """Write train/val/test JSONL files (80/10/10, shuffled with `seed`)."""
    lines = [line for line in DEMO_DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    random.Random(seed).shuffle(lines)
    n = len(lines)
    parts = {"train": lines[: n * 8 // 10], "val": lines[n * 8 // 10 : n * 9 // 10]}
    parts["test"] = lines[n * 9 // 10 :]
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, rows in parts.items():
        paths[name] = out / f"{name}.jsonl"
        paths[name].write_text("\n".join(rows) + "\n", encoding="utf-8")
    return paths


def encode(tokenizer, example: dict, max_len: int) -> tuple[list[int], list[int]]:
    prompt, completion = prompt_and_completion(example)
    prefix = tokenizer.apply_chat_template(prompt, add_generation_prompt=True)
    answer = tokenizer(completion + "<|im_end|>", add_special_tokens=False)["input_ids"]
    ids = (prefix + answer)[:max_len]
    labels = ([-100] * len(prefix) + answer)[:max_len]
    return ids, labels


def train(out: Path, steps: int, batch_size: int, lr: float, seed: int) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    base = resolve_base(DEFAULT_BASE)
    tokenizer, model = load_tokenizer(base), load_model(base)
    splits = split_demo(out / "data", seed)
    examples = read_examples(splits["train"])
    config = LoraConfig(
        r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    model = get_peft_model(model, config)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    rng = random.Random(seed)
    started = time.perf_counter()
    for step in range(steps):
        batch = [encode(tokenizer, ex, 256) for ex in rng.sample(examples, batch_size)]
        loss = answer_loss(model, batch, tokenizer.pad_token_id)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step % 4 == 0 or step == steps - 1:
            print(
                f"step {step}: loss {loss.item():.3f} ({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
    adapter = out / "support-triage"
    model.save_pretrained(adapter)
    write_manifest(adapter, base)
    return adapter


def answer_loss(model, batch, pad: int):
    """Cross-entropy on the answer tokens only, projecting just those positions onto the
    49k-token vocabulary (most of a step's time otherwise goes into unused logits)."""
    import torch

    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch])
    mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
    causal_lm = model.get_base_model()
    hidden = causal_lm.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
    targets = labels[:, 1:]
    keep = targets != -100
    logits = causal_lm.lm_head(hidden[:, :-1][keep])
    return torch.nn.functional.cross_entropy(logits, targets[keep])


def write_manifest(adapter: Path, base) -> None:
    config = json.loads((base.path / "config.json").read_text())
    manifest = {
        "format": 1,
        "name": "support-triage",
        "method": "lora",
        "base": {
            "spec": base.spec,
            "architecture": config["architectures"][0],
            "hidden_size": config["hidden_size"],
            "num_hidden_layers": config["num_hidden_layers"],
            "vocab_size": config["vocab_size"],
            "config_sha256": hashlib.sha256((base.path / "config.json").read_bytes()).hexdigest(),
        },
        "tuneloop_version": __version__,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "task": {"label_field": "category", "labels": LABELS, "output": "json"},
    }
    (adapter / "tuneloop_adapter.json").write_text(json.dumps(manifest, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-results/quick-adapter"))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(train(args.out, args.steps, args.batch_size, args.lr, args.seed))


if __name__ == "__main__":
    main()
