"""The transformers `Trainer`, with a loss that computes logits only where there is a label.

The output layer of a small model is its most expensive matrix (SmolLM2: 49,152 x 576, about a
fifth of all weights), and most positions of a chat example are prompt tokens that carry no
loss. With one packed row per micro-batch, `logits_to_keep` (a transformers forward argument)
takes the labelled positions, so logits and their softmax are computed for those only. The
call goes through the model's own forward, so DDP's gradient synchronisation and PEFT's
wrappers work as usual.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import Trainer, TrainingArguments

from tuneloop.train.encoding import IGNORE_INDEX


class TuneloopTrainer(Trainer):
    """`Trainer` whose loss skips the output layer at unlabelled positions of a packed row."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if inputs["input_ids"].shape[0] != 1 or "position_ids" not in inputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs.pop("labels")
        targets = labels[0, 1:]
        keep = (targets != IGNORE_INDEX).nonzero().squeeze(1)
        outputs = model(**inputs, logits_to_keep=keep, use_cache=False)
        loss = selective_loss(outputs.logits[0], targets[keep], num_items_in_batch)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            # the count is summed over processes and DDP averages gradients: undo the mean
            loss = loss * self.accelerator.num_processes
        return (loss, outputs) if return_outputs else loss


def selective_loss(logits: torch.Tensor, targets: torch.Tensor, num_items=None) -> torch.Tensor:
    """Cross-entropy summed over the kept positions, divided by the tokens of the whole step."""
    total = F.cross_entropy(logits.float(), targets, reduction="sum")
    if num_items is None:
        return total / max(targets.numel(), 1)
    if torch.is_tensor(num_items):
        num_items = num_items.to(total.device)
    return total / num_items


@dataclass
class Schedule:
    """Steps and their sizes, derived from the resolved options and the packed data."""

    rows: int
    examples_per_row: float
    rows_per_step: int
    steps_per_epoch: int
    max_steps: int
    eval_every: int
    world_size: int

    def describe(self) -> str:
        return (
            f"{self.rows} packed rows ({self.examples_per_row:.1f} examples each), "
            f"{self.rows_per_step} rows per step x {self.world_size} process(es), "
            f"{self.steps_per_epoch} steps per epoch, {self.max_steps} steps, validation every "
            f"{self.eval_every}"
        )


def plan_schedule(
    rows: int,
    examples_per_row: float,
    *,
    batch_size: int,
    grad_accum: int,
    epochs: float,
    max_steps: int | None,
    eval_every: int | str,
    world_size: int,
) -> Schedule:
    rows_per_step = max(1, round(batch_size / max(examples_per_row, 1e-9))) * grad_accum
    steps_per_epoch = max(1, math.ceil(rows / (rows_per_step * world_size)))
    total = max_steps or max(1, math.ceil(epochs * steps_per_epoch))
    every = max(1, round(total / 5)) if eval_every == "auto" else int(eval_every)
    return Schedule(
        rows, examples_per_row, rows_per_step, steps_per_epoch, total, min(every, total), world_size
    )


def training_arguments(
    *,
    output_dir: str,
    logging_dir: str,
    schedule: Schedule,
    lr: float,
    warmup_ratio: float,
    weight_decay: float,
    seed: int,
    bf16: bool,
    packed: bool,
    batch_size: int,
    report_to: list[str],
    early_stopping: bool,
) -> TrainingArguments:
    on_cpu = not torch.cuda.is_available()
    return TrainingArguments(
        output_dir=output_dir,
        logging_dir=logging_dir,
        per_device_train_batch_size=1 if packed else batch_size,
        per_device_eval_batch_size=1 if packed else batch_size,
        gradient_accumulation_steps=schedule.rows_per_step,
        max_steps=schedule.max_steps,
        learning_rate=lr,
        lr_scheduler_type="cosine",
        warmup_steps=math.ceil(warmup_ratio * schedule.max_steps),
        weight_decay=weight_decay,
        eval_strategy="steps",
        eval_steps=schedule.eval_every,
        save_strategy="steps",
        save_steps=schedule.eval_every,
        save_total_limit=2,
        load_best_model_at_end=early_stopping,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        logging_steps=max(1, min(10, schedule.eval_every // 2)),
        report_to=report_to,
        seed=seed,
        data_seed=seed,
        bf16=bf16,
        use_cpu=on_cpu,
        ddp_backend="gloo" if on_cpu and schedule.world_size > 1 else None,
        remove_unused_columns=False,
        label_names=["labels"],
        # packed rows hold no padding; padded batches count their attention mask
        include_num_input_tokens_seen="all" if packed else "non_padding",
        disable_tqdm=True,
        dataloader_num_workers=0,
        save_safetensors=True,
        restore_callback_states_from_checkpoint=True,
        prediction_loss_only=True,
    )


def build_trainer(job, model, tokenizer, data, choices, packed, bf16, report_to):
    """The Trainer for a job: packed (or padded) data, schedule, arguments and callbacks."""
    from transformers import EarlyStoppingCallback
    from transformers.trainer_callback import PrinterCallback

    from tuneloop.train import callbacks
    from tuneloop.train.packing import (
        ExampleDataset,
        PackedCollator,
        PackedDataset,
        PaddingCollator,
    )

    options = job.options
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    longest = max(len(e) for e in data.train_encoded + data.val_encoded)
    val_encoded = eval_sample(data.val_encoded, options.eval_examples, options.seed)
    if packed:
        capacity = max(options.pack_length, longest)
        train_ds = PackedDataset(data.train_encoded, capacity, options.seed)
        val_ds = PackedDataset(val_encoded, capacity, options.seed)
        collator = PackedCollator(tokenizer.pad_token_id)
        rows, per_row = len(train_ds), train_ds.examples_per_row()
    else:
        train_ds, val_ds = ExampleDataset(data.train_encoded), ExampleDataset(val_encoded)
        collator = PaddingCollator(tokenizer.pad_token_id)
        rows, per_row = len(train_ds), float(choices["batch_size"].value)
    schedule = plan_schedule(
        rows,
        per_row,
        batch_size=int(choices["batch_size"].value),
        grad_accum=options.grad_accum,
        epochs=float(choices["epochs"].value),
        max_steps=options.max_steps,
        eval_every=options.eval_every,
        world_size=world_size,
    )
    if not packed:  # a padded batch holds batch_size examples already
        schedule.rows_per_step = options.grad_accum
        schedule.steps_per_epoch = max(1, -(-rows // (int(per_row) * world_size)))
    args = training_arguments(
        output_dir=str(job.out / "checkpoints"),
        logging_dir=str(job.out / "tensorboard"),
        schedule=schedule,
        lr=float(choices["lr"].value),
        warmup_ratio=options.warmup_ratio,
        weight_decay=options.weight_decay,
        seed=options.seed,
        bf16=bf16,
        packed=packed,
        batch_size=int(choices["batch_size"].value),
        report_to=report_to,
        early_stopping=True,
    )
    metrics = callbacks.MetricsLog(job.out / "metrics.jsonl", world_size)
    extra = [
        metrics,
        callbacks.ProgressBar(metrics),
        callbacks.LossWatchdog(options.divergence_factor, options.divergence_patience),
        callbacks.CommitCheckpoints(),
        callbacks.EvaluateLastStep(),
    ]
    if options.patience:
        extra.append(
            EarlyStoppingCallback(
                early_stopping_patience=options.patience,
                early_stopping_threshold=options.min_improvement,
            )
        )
    if kill_after := os.environ.get("TUNELOOP_TEST_KILL_AFTER_STEPS"):
        extra.append(callbacks.StopAfterSteps(int(kill_after)))
    trainer = TuneloopTrainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        data_collator=collator,
        callbacks=extra,
    )
    trainer.remove_callback(PrinterCallback)  # our progress bar and metrics.jsonl replace it
    return trainer, schedule


def eval_sample(encoded: list, limit: int, seed: int) -> list:
    """The validation examples used during training: all, or a seeded sample of `limit`."""
    if not limit or len(encoded) <= limit:
        return encoded
    import random

    return [encoded[i] for i in sorted(random.Random(seed).sample(range(len(encoded)), limit))]
