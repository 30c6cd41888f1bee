"""The adaptation methods: a base model plus the PEFT configuration (or none, for `full`).

Target modules are chosen per architecture (every linear layer of attention and MLP, as QLoRA
recommends), overridable with --target-modules. `--layers N` adapts only the top N layers: the
backward pass then stops at the lowest adapted layer, which makes each step cheaper.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tuneloop.base_model import ResolvedBase, load_model
from tuneloop.errors import MissingDependencyError, UsageError
from tuneloop.train.options import TrainOptions

log = logging.getLogger(__name__)

_LLAMA_LIKE = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
TARGET_MODULES = {
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "qwen2": _LLAMA_LIKE,
    "qwen3": _LLAMA_LIKE,
    "gemma": _LLAMA_LIKE,
    "gemma2": _LLAMA_LIKE,
    "granite": _LLAMA_LIKE,
    "olmo": _LLAMA_LIKE,
    "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
    "phi": ["q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"],
    "gpt2": ["c_attn", "c_proj", "c_fc"],
    "gpt_neox": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
    "falcon": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"],
}


@dataclass
class ModelChoice:
    """What was built, for the log and training_config.json."""

    target_modules: list[str] | str | None
    layers: list[int] | None
    trainable_params: int
    total_params: int
    reason: str


def build_model(resolved: ResolvedBase, method: str, options: TrainOptions, tokenizer):
    """The model to train (PEFT-wrapped unless `full`) and what was chosen."""
    model = _load_4bit(resolved) if method == "qlora" else load_model(resolved)
    model.config.use_cache = False
    if method == "full":
        model.train()
        n = sum(p.numel() for p in model.parameters())
        return model, ModelChoice(None, None, n, n, "full fine-tuning: every weight trains")
    from peft import get_peft_model

    config, choice_reason, targets, layers = _peft_config(model, method, options, tokenizer)
    if method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    peft_model = get_peft_model(model, config)
    peft_model.train()
    trainable, total = peft_model.get_nb_trainable_parameters()
    return peft_model, ModelChoice(targets, layers, trainable, total, choice_reason)


def _peft_config(model, method: str, options: TrainOptions, tokenizer):
    from peft import LoraConfig, PromptTuningConfig, PromptTuningInit, TaskType

    if method == "prompt-tuning":
        config = PromptTuningConfig(
            task_type=TaskType.CAUSAL_LM,
            num_virtual_tokens=options.num_virtual_tokens,
            prompt_tuning_init=PromptTuningInit.RANDOM,
        )
        return config, f"{options.num_virtual_tokens} virtual tokens", None, None
    targets, why = target_modules(model, options.target_modules)
    layers, layer_why = adapted_layers(model, options.layers)
    alpha = 2 * options.lora_r if options.lora_alpha == "auto" else options.lora_alpha
    config = LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=options.lora_r,
        lora_alpha=alpha,
        lora_dropout=options.lora_dropout,
        target_modules=targets,
        layers_to_transform=layers,
        use_dora=method == "dora",
        use_rslora=method == "rslora",
    )
    return config, f"{why}; {layer_why}; r={options.lora_r}, alpha={alpha:g}", targets, layers


def target_modules(model, override: list[str] | None) -> tuple[list[str], str]:
    if override:
        return list(override), "target modules as given"
    model_type = model.config.model_type
    if model_type in TARGET_MODULES:
        return TARGET_MODULES[model_type], f"all attention and MLP projections of {model_type}"
    names = sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, module in model.named_modules()
            if type(module).__name__ in ("Linear", "Linear4bit", "Conv1D") and "lm_head" not in name
        }
    )
    if not names:
        raise UsageError(f"found no linear layers to adapt in {model_type}; pass --target-modules")
    return names, f"every linear layer of {model_type} (no preset for this architecture)"


def adapted_layers(model, layers: int | str) -> tuple[list[int] | None, str]:
    """Indices of the layers to adapt (None: all). Gradients never flow below the lowest one."""
    n = model.config.num_hidden_layers
    top = (n + 1) // 2 if layers == "auto" else n if layers == "all" else min(int(layers), n)
    if top >= n:
        return None, f"all {n} layers"
    why = " (auto: the top half; --layers all for every layer)" if layers == "auto" else ""
    return list(range(n - top, n)), f"the top {top} of {n} layers{why}"


def _load_4bit(resolved: ResolvedBase):
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            "--method qlora needs bitsandbytes: pip install 'tuneloop[gpu]' "
            "(or pip install bitsandbytes)"
        ) from exc
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.float32,
    )
    try:
        return AutoModelForCausalLM.from_pretrained(
            resolved.path, quantization_config=quantization, dtype=torch.float32
        )
    except (RuntimeError, ValueError, ImportError) as exc:
        raise UsageError(
            f"--method qlora: bitsandbytes cannot load a 4-bit model on this device ({exc}); "
            "use --method lora"
        ) from exc
