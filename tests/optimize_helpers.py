"""Builders shared by the optimize tests: tiny LoRA adapters whose B matrices are not zero
(so merging changes the model), written as `tuneloop train` would write them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tuneloop.base_model import ResolvedBase
from tuneloop.data_formats import read_examples
from tuneloop.demo import DEMO_DATA


def make_adapter(base_model, folder: Path, *, seed: int = 1, dora: bool = False, manifest=None):
    """Save a LoRA (or DoRA) adapter with random, non-zero weights on `base_model`."""
    import copy

    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False, use_dora=dora
    )
    peft_model = get_peft_model(copy.deepcopy(base_model), config)
    with torch.no_grad():  # large enough that merging visibly changes the logits
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.05)
    peft_model.save_pretrained(folder)
    if manifest is not None:
        (Path(folder) / "tuneloop_adapter.json").write_text(json.dumps(manifest))
    return Path(folder)


def adapter_manifest(base_dir: Path, **overrides) -> dict:
    from tuneloop.optimize.adapter_source import base_fingerprint

    config = json.loads((Path(base_dir) / "config.json").read_text())
    base = base_fingerprint(ResolvedBase(str(base_dir), Path(base_dir), "local"), config)
    return {
        "format": 1,
        "name": "support-triage",
        "method": "lora",
        "base": {**base, **overrides},
        "task": {"label_field": "category", "labels": ["billing", "shipping"], "output": "json"},
    }


def demo_token_ids(tokenizer, count: int = 4) -> list[list[int]]:
    """Real prompts and answers from the demo set, through the chat template."""
    return [
        tokenizer.apply_chat_template(ex["messages"]) for ex in read_examples(DEMO_DATA)[:count]
    ]


def write_demo_subset(path: Path, count: int) -> Path:
    lines = DEMO_DATA.read_text(encoding="utf-8").splitlines()[:count]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def copy_folder(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target
