"""Options of `tuneloop train`: one dataclass, one docstring per field, checked before loading.

`auto` values are resolved once the data is read (see `auto` and `resolve`), and the resolved
values with the reason for each choice are written to training_config.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Method = Literal["lora", "dora", "rslora", "qlora", "prompt-tuning", "full"]
ADAPTER_METHODS = ("lora", "dora", "rslora", "qlora")
Precision = Literal["auto", "fp32", "bf16"]
ReportTo = Literal["none", "mlflow", "wandb"]

DEFAULT_TOKEN_BUDGET = 150_000
"""Training tokens `auto` epochs may use: about 8 minutes of LoRA on a 2-core CPU (bf16)."""


@dataclass
class TrainOptions:
    """Hyperparameters and behaviour of `tuneloop train`."""

    epochs: float | Literal["auto"] = "auto"
    """passes over the training data; auto: OpenAI's rule from the example count, capped by
    --token-budget"""
    batch_size: int | Literal["auto"] = "auto"
    """examples per optimizer step; auto: about 1 in 100 examples, within 4-64"""
    lr: float | Literal["auto"] = "auto"
    """peak learning rate; auto: a per-method base rate scaled with the batch size"""
    token_budget: int = DEFAULT_TOKEN_BUDGET
    """cap on the tokens that auto epochs may train on (0: no cap)"""
    warmup_ratio: float = 0.05
    """share of the steps spent warming the learning rate up"""
    weight_decay: float = 0.0
    """AdamW weight decay"""
    lora_r: int = 16
    """LoRA rank"""
    lora_alpha: float | Literal["auto"] = "auto"
    """LoRA scaling numerator; auto: 2 x rank"""
    lora_dropout: float = 0.0
    """dropout on the LoRA input (off by default: on a CPU it costs a fifth of the step time)"""
    target_modules: list[str] | None = None
    """module names to adapt (default: chosen per architecture)"""
    layers: int | Literal["auto", "all"] = "auto"
    """adapt only the top N transformer layers: the backward pass then stops there; auto: the
    top half (about 1.4x faster steps than all layers), all: every layer"""
    num_virtual_tokens: int = 20
    """soft-prompt length for prompt-tuning"""
    grad_accum: int = 1
    """accumulate gradients over this many optimizer-step batches (a larger effective batch)"""
    max_seq_len: int | Literal["auto"] = "auto"
    """longest example in tokens; auto: the base model's context length. Longer examples are
    dropped (and counted in the log); `tuneloop data prepare --overlong truncate` shortens them"""
    packing: bool = True
    """pack several examples into one row, with attention kept inside each example"""
    pack_length: int = 512
    """tokens per packed row (an example longer than this gets a row of its own)"""
    train_on_prompt: bool = False
    """compute the loss on prompt tokens too, not only on the assistant's answers"""
    eval_every: int | Literal["auto"] = "auto"
    """validation loss every N optimizer steps; auto: about 5 evaluations per run"""
    patience: int = 3
    """stop early after this many evaluations without a better validation loss (0: never)"""
    min_improvement: float = 0.0
    """a validation loss counts as better only when it drops by more than this"""
    val_fraction: float = 0.1
    """share of --data held out for validation when no --val file is given"""
    seed: int = 42
    """seed for initialisation, shuffling and dropout"""
    precision: Precision = "auto"
    """compute precision; auto: bf16 autocast where the CPU or GPU supports it, else fp32"""
    label_field: str | None = None
    """field of the assistant's JSON answer that holds a label (auto-detected when every
    answer is a JSON object with one string field that repeats)"""
    report_to: ReportTo = "none"
    """also log to MLflow or Weights & Biases (TensorBoard event files are always written)"""
    eval_examples: int = 64
    """validation examples used for the loss during training (a seeded sample; 0: all)"""
    profile_examples: int = 128
    """training examples sampled for the drift profile's model-based features"""
    divergence_factor: float = 3.0
    """watchdog: abort when the loss is this many times its starting value ..."""
    divergence_patience: int = 3
    """... for this many consecutive logs or evaluations (a NaN aborts at once)"""
    max_steps: int | None = None
    """stop after this many optimizer steps (overrides epochs; for smoke tests)"""

    def __post_init__(self) -> None:
        _positive(self, "epochs", "batch_size", "lr", "lora_alpha", "max_seq_len", "eval_every")
        _positive(self, "lora_r", "grad_accum", "pack_length", "num_virtual_tokens")
        _positive(self, "profile_examples", "divergence_factor", "divergence_patience")
        if isinstance(self.layers, int) and self.layers < 1:
            raise ValueError("--layers must be at least 1 (or auto, all)")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError("--lora-dropout must be in [0, 1)")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError("--warmup-ratio must be in [0, 1)")
        if not 0 < self.val_fraction < 0.5:
            raise ValueError("--val-fraction must be in (0, 0.5)")
        if min(self.token_budget, self.patience, self.weight_decay, self.min_improvement) < 0:
            raise ValueError(
                "--token-budget, --patience, --weight-decay, --min-improvement must be >= 0"
            )
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError("--max-steps must be at least 1")


def _positive(options: TrainOptions, *names: str) -> None:
    for name in names:
        value = getattr(options, name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive, got {value}")


@dataclass
class PrepareOptions:
    """How `tuneloop data prepare` cleans and splits."""

    val_fraction: float = 0.1
    """share of the examples for the validation split"""
    test_fraction: float = 0.1
    """share of the examples for the test split"""
    seed: int = 2026
    """seed of the split (same data + seed = same splits)"""
    label_field: str | None = None
    """stratify by this field of the assistant's JSON answer (or of the metadata), e.g. category"""
    max_tokens: int | None = None
    """token limit per example; default: the base model's context length"""
    overlong: Literal["drop", "truncate"] = "drop"
    """what to do with examples over the limit: drop them, or shorten the prompt to fit"""
    near_dup_threshold: float | None = 0.8
    """Jaccard similarity of prompts (word 3-grams, MinHash) from which examples count as near
    duplicates; 1 keeps all but exact duplicates"""
    leakage_threshold: float = 0.8
    """validation/test examples at least this similar to a training prompt are removed"""
    folds: int = 0
    """also write this many cross-validation folds of train+validation (0: none)"""

    def __post_init__(self) -> None:
        for name in ("val_fraction", "test_fraction"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be in [0, 1)")
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError("--val-fraction + --test-fraction must leave at least 10% to train")
        for name in ("near_dup_threshold", "leakage_threshold"):
            value = getattr(self, name)
            if value is not None and not 0 < value <= 1:
                raise ValueError(f"--{name.replace('_', '-')} must be in (0, 1]")
        if self.folds == 1 or self.folds < 0:
            raise ValueError("--folds must be 0 (none) or at least 2")
        if self.max_tokens is not None and self.max_tokens < 8:
            raise ValueError("--max-tokens must be at least 8")
