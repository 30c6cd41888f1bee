"""Training throughput: tuneloop's trainer vs a plain Hugging Face Trainer + PEFT baseline.

Both train the same LoRA adapter (rank 16 on every linear layer of attention and MLP) on the
same demo examples with the loss on the answers only, for the same number of optimizer steps
of 8 examples. They differ in what tuneloop does by default:
- tuneloop: examples packed into rows (attention kept inside each example, no padding), logits
  computed only at answer positions, bf16 autocast where the processor supports it;
- tuneloop-top-half: tuneloop's default adapter, on the top half of the layers only (the
  backward pass stops there), for reference: a different adapter, so not part of the ratio;
- baseline: `transformers.Trainer` with per-batch padding (the usual `DataCollatorForSeq2Seq`
  way), full logits, fp32 (the Trainer's default).
The figure is *real* tokens per second: tokens of the examples, never padding. Variants run in
alternating rounds in one process, so a machine busy with other work slows all of them alike;
the ratio is the median of the per-round ratios.

Run: `python -m tuneloop.bench.train_throughput [--base B] [--steps N] [--rounds R]`
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

VARIANTS = ("tuneloop", "tuneloop-fp32", "tuneloop-top-half", "baseline")


def encoded_demo(tokenizer, n: int):
    from tuneloop.data_formats import read_examples
    from tuneloop.demo import DEMO_DATA
    from tuneloop.train.encoding import encode

    return [encode(tokenizer, e["messages"]) for e in read_examples(DEMO_DATA)[:n]]


class _Clock:
    """Counts real tokens as batches are built, and times the steps after the first (warm-up)."""

    def __init__(self, collator) -> None:
        from transformers import TrainerCallback

        clock = self
        self.collator, self.tokens = collator, 0
        self.start = self.end = 0.0
        self.tokens_at_start = self.tokens_at_end = 0

        class Callback(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == 1:
                    clock.start, clock.tokens_at_start = time.perf_counter(), clock.tokens
                clock.end, clock.tokens_at_end = time.perf_counter(), clock.tokens

        self.callback = Callback()

    def __call__(self, items):
        batch = self.collator(items)
        mask = batch.get("attention_mask")
        self.tokens += int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())
        return batch


def _lora_model(base, layers=None):
    from peft import LoraConfig, get_peft_model

    from tuneloop.base_model import load_model
    from tuneloop.train.methods import TARGET_MODULES

    model = load_model(base)
    model.config.use_cache = False
    config = LoraConfig(
        r=16, lora_alpha=32, lora_dropout=0.0, target_modules=TARGET_MODULES["llama"],
        layers_to_transform=layers, task_type="CAUSAL_LM",
    )  # fmt: skip
    return get_peft_model(model, config).train()


def _top_half(base) -> list[int]:
    from tuneloop.train.manifest import base_config

    n = base_config(base)["num_hidden_layers"]
    return list(range(n // 2, n))


def run_variant(name: str, base, tokenizer, encoded, steps: int, out: Path) -> dict:
    """Train `steps` optimizer steps of 8 examples; return real tokens/s after the first step."""
    import torch
    from transformers import Trainer, TrainingArguments

    from tuneloop.train.auto import bf16_supported
    from tuneloop.train.packing import ExampleDataset, PackedCollator, PackedDataset
    from tuneloop.train.trainer import TuneloopTrainer

    torch.manual_seed(0)
    batch = 8
    examples = encoded[: batch * steps]
    common = dict(
        output_dir=str(out / name), max_steps=steps, learning_rate=2e-4, report_to=[],
        save_strategy="no", logging_strategy="no", disable_tqdm=True, use_cpu=True,
        remove_unused_columns=False, dataloader_num_workers=0, seed=0,
    )  # fmt: skip
    if name.startswith("tuneloop"):
        dataset = PackedDataset(examples, capacity=512, seed=0)
        rows_per_step = max(1, round(batch / dataset.examples_per_row()))
        args = TrainingArguments(
            per_device_train_batch_size=1, gradient_accumulation_steps=rows_per_step,
            bf16=name != "tuneloop-fp32" and bf16_supported(), **common,
        )  # fmt: skip
        trainer_cls, collator = TuneloopTrainer, PackedCollator(tokenizer.pad_token_id)
    else:
        from transformers import DataCollatorForSeq2Seq

        dataset = ExampleDataset(examples)
        args = TrainingArguments(per_device_train_batch_size=batch, **common)
        trainer_cls = Trainer
        collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    clock = _Clock(collator)
    model = _lora_model(base, _top_half(base) if name == "tuneloop-top-half" else None)
    trainer = trainer_cls(
        model=model, args=args, train_dataset=dataset, data_collator=clock,
        callbacks=[clock.callback],
    )  # fmt: skip
    trainer.train()
    tokens = clock.tokens_at_end - clock.tokens_at_start
    seconds = clock.end - clock.start
    return {
        "steps_timed": trainer.state.global_step - 1,
        "real_tokens": tokens,
        "seconds": round(seconds, 2),
        "tokens_per_s": tokens / seconds if seconds else 0.0,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="smollm2-135m-instruct")
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per variant")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args(argv)

    from tuneloop.base_model import load_tokenizer, resolve_base

    base = resolve_base(args.base)
    tokenizer = load_tokenizer(base)
    encoded = encoded_demo(tokenizer, 8 * args.steps)
    load_before = os.getloadavg()[0]
    rounds = []
    for _ in range(args.rounds):
        rounds.append({v: run_variant(v, base, tokenizer, encoded, args.steps, args.out / "tmp")
                       for v in VARIANTS})  # fmt: skip
    ratios = [r["tuneloop"]["tokens_per_s"] / r["baseline"]["tokens_per_s"] for r in rounds]
    result = {
        "base": base.spec,
        "steps": args.steps,
        "examples_per_step": 8,
        "threads": __import__("torch").get_num_threads(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
        "rounds": rounds,
        "median_tokens_per_s": {
            v: statistics.median(r[v]["tokens_per_s"] for r in rounds) for v in VARIANTS
        },
        "speedup_vs_baseline": statistics.median(ratios),
        "speedup_per_round": ratios,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in result if k != "rounds"}, indent=2))
    return result


if __name__ == "__main__":
    main()
