"""The torch backend: one transformers model, with PEFT LoRA adapters loaded side by side.

Every adapter stays unmerged, so a batch can mix them: PEFT applies each row's own adapter
when `adapter_names` is passed to the forward call (rows without one use the base weights,
PEFT's `__base__`). A batch that uses a single adapter, or none, skips the per-row split.

fp32 on CPU; bf16 (or fp16) on a GPU; `quantization` loads 8- or 4-bit weights with
bitsandbytes on a GPU.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

import torch
from safetensors import SafetensorError

from tuneloop.base_model import load_tokenizer, resolve_base
from tuneloop.errors import MissingDependencyError, ModelLoadError, UsageError
from tuneloop.serve.adapter_folder import inspect_adapter
from tuneloop.serve.backends.base import ForwardInput, ModelInfo
from tuneloop.serve.batch_cache import KV
from tuneloop.serve.errors import AdapterRefused

log = logging.getLogger(__name__)

PEFT_BASE_ROW = "__base__"
MIXED = "\0mixed"  # never an adapter name (names are checked in serve.adapter_folder)
UNKNOWN = "\0unknown"  # PEFT's state after loading or deleting an adapter


class TorchBackend:
    def __init__(self, model, tokenizer, info: ModelInfo, device: str) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.info = info
        self.device = device
        self.eos_token_ids = eos_token_ids(model, tokenizer)
        self._base_config = json.loads((info.path / "config.json").read_text(encoding="utf-8"))
        self._peft = None
        self._active: str | None = None
        # A snapshot the HTTP side may read while the worker loads or unloads adapters.
        self._adapter_names: tuple[str, ...] = ()
        self.adapter_folders: dict[str, Path] = {}
        """Where each adapter was loaded from (its reference profile lives there)."""

    @classmethod
    def load(cls, spec) -> TorchBackend:
        """Load the model of a `ModelSpec` (serve.lanes) and its adapters."""
        resolved = resolve_base(spec.path)
        device = _device(spec.device)
        if spec.threads and device == "cpu":
            torch.set_num_threads(spec.threads)  # process-wide; see Settings.compute_threads
        dtype = _dtype(spec.dtype, device)
        model = _load_model(resolved.path, dtype, device, spec.quantization)
        precision = spec.quantization if spec.quantization != "none" else dtype
        info = ModelInfo(
            name=spec.name,
            backend="torch",
            precision=precision,
            path=resolved.path,
            max_context=int(getattr(model.config, "max_position_embeddings", 2048)),
            extra={"base": spec.base_label or resolved.spec},
        )
        backend = cls(model, load_tokenizer(resolved), info, device)
        for name, folder in spec.adapters.items():
            backend.load_adapter(name, folder)
        return backend

    @property
    def adapters(self) -> list[str]:
        return list(self._adapter_names)

    def load_adapter(self, name: str, folder: Path) -> None:
        """Add a LoRA adapter next to the others; refuses one made for another base."""
        if name in self.adapters:
            raise AdapterRefused(f"adapter {name!r} is already loaded")
        inspect_adapter(name, folder, self._base_config)
        try:
            if self._peft is None:
                from peft import PeftModel

                self._peft = PeftModel.from_pretrained(self.model, folder, adapter_name=name)
            else:
                self._peft.load_adapter(folder, adapter_name=name)
        except (RuntimeError, ValueError, KeyError, OSError, SafetensorError) as exc:
            self._forget_partial(name)
            raise AdapterRefused(
                f"adapter {name!r} from {folder} does not fit base {self.info.name}: "
                f"{str(exc).splitlines()[0]}"
            ) from exc
        self._peft.eval()
        self._active = UNKNOWN
        self._adapter_names = tuple(sorted(self._peft.peft_config))
        self.adapter_folders[name] = Path(folder)
        log.info("loaded adapter %s from %s", name, folder)

    def unload_adapter(self, name: str) -> None:
        if name not in self.adapters:
            raise AdapterRefused(f"adapter {name!r} is not loaded")
        if len(self.adapters) == 1:
            # PEFT keeps at least one adapter; unwrapping restores the plain base model.
            self.model = self._peft.unload()
            self._peft = None
        else:
            self._peft.delete_adapter(name)
        self._active = UNKNOWN
        self._adapter_names = tuple(a for a in self._adapter_names if a != name)
        self.adapter_folders.pop(name, None)
        log.info("unloaded adapter %s", name)

    def forward(self, batch: ForwardInput) -> tuple[torch.Tensor, KV]:
        kwargs = {
            "input_ids": batch.input_ids.to(self.device),
            "attention_mask": batch.attention_mask.to(self.device),
            "position_ids": batch.position_ids.to(self.device),
            "past_key_values": cache_from_kv(batch.past),
            "use_cache": True,
            "logits_to_keep": 1,
        }
        with torch.inference_mode(), self._adapter_scope(batch.adapters, kwargs) as model:
            out = model(**kwargs)
        return out.logits[:, -1].float().cpu(), kv_from_cache(out.past_key_values)

    @property
    def can_pool_prompts(self) -> bool:
        return final_norm(self.model) is not None

    def forward_pooled(self, batch: ForwardInput) -> tuple[torch.Tensor, KV, torch.Tensor]:
        """`forward`, plus per row the sum of the new real tokens' last hidden states (after
        the final norm, the tensor the output layer reads) [batch, hidden], float32 on CPU.

        A forward hook on the final norm catches the hidden states the pass computes anyway;
        the masked sum is the only extra work (drift monitoring's prompt embedding).
        """
        norm = final_norm(self.model)
        caught: list[torch.Tensor] = []
        handle = norm.register_forward_hook(lambda module, args, out: caught.append(out))
        try:
            logits, kv = self.forward(batch)
        finally:
            handle.remove()
        hidden = caught[-1]
        mask = batch.attention_mask[:, -hidden.shape[1] :].to(hidden.device, hidden.dtype)
        pooled = (hidden * mask[..., None]).sum(dim=1)
        return logits, kv, pooled.float().cpu()

    @contextlib.contextmanager
    def _adapter_scope(self, adapters: list[str | None] | None, kwargs: dict):
        """Yield the module to call with the right adapters active for this batch's rows.

        Switching PEFT's state walks every layer (tens of ms on this model), so the state is
        kept from step to step and changed only when the batch's adapters change.
        """
        if self._peft is None:
            if adapters:
                raise AdapterRefused(f"no adapters are loaded on {self.info.name}")
            yield self.model
            return
        names = set(adapters or [None])
        if names == {None}:
            self._switch_to(None)
        elif len(names) == 1:
            self._switch_to(next(iter(names)))
        else:
            self._switch_to(MIXED)
            kwargs["adapter_names"] = [name or PEFT_BASE_ROW for name in adapters]
        yield self._peft

    def _switch_to(self, mode: str | None) -> None:
        """None: base weights only; an adapter name: that adapter; MIXED: per-row adapters."""
        if mode == self._active:
            return
        lora = self._peft.base_model
        if mode is None:
            lora.disable_adapter_layers()
        else:
            if self._active in (None, UNKNOWN):
                lora.enable_adapter_layers()
            if mode != MIXED:
                self._peft.set_adapter(mode)
        self._active = mode

    def _forget_partial(self, name: str) -> None:
        if self._peft is not None and name in self._peft.peft_config:
            with contextlib.suppress(Exception):
                self._peft.delete_adapter(name)


def final_norm(model):
    """The norm after the last decoder layer (Llama, Mistral, Qwen, Gemma, ...), or None."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    norm = getattr(decoder, "norm", None)
    return norm if isinstance(norm, torch.nn.Module) else None


def cache_from_kv(kv: KV | None):
    """A transformers DynamicCache that wraps `kv` without copying it."""
    from transformers import DynamicCache

    cache = DynamicCache()
    if not kv:
        return cache
    if hasattr(cache, "layers"):  # transformers >= 4.56: one layer object per layer
        from transformers.cache_utils import DynamicLayer

        for keys, values in kv:
            layer = DynamicLayer()
            layer.lazy_initialization(keys)
            layer.keys, layer.values = keys, values
            cache.layers.append(layer)
    else:
        cache.key_cache = [k for k, _ in kv]
        cache.value_cache = [v for _, v in kv]
    return cache


def kv_from_cache(cache) -> KV:
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    return list(zip(cache.key_cache, cache.value_cache, strict=True))


def eos_token_ids(model, tokenizer) -> frozenset[int]:
    """End tokens: the generation config's (one or a list) and the tokenizer's."""
    configured = getattr(model.generation_config, "eos_token_id", None)
    ids = set(configured if isinstance(configured, list) else [configured])
    ids.add(tokenizer.eos_token_id)
    return frozenset(i for i in ids if i is not None)


def _device(spec: str) -> str:
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device {spec!r}: torch sees no CUDA device here")
    return spec


def _dtype(spec: str, device: str) -> str:
    if spec != "auto":
        return spec
    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"


def _load_model(path: Path, dtype: str, device: str, quantization: str):
    from transformers import AutoModelForCausalLM

    kwargs: dict = {"dtype": getattr(torch, dtype), "use_safetensors": True}
    if quantization != "none":
        if not device.startswith("cuda"):
            raise UsageError(f"quantization {quantization!r} needs a CUDA device (bitsandbytes)")
        kwargs["quantization_config"] = _bitsandbytes_config(quantization, dtype)
        kwargs["device_map"] = device
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load model from {path}: {exc}") from exc
    if quantization == "none":
        model = model.to(device)
    return model.eval()


def _bitsandbytes_config(quantization: str, dtype: str):
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            f"quantization {quantization!r} needs bitsandbytes: pip install 'tuneloop[gpu]'"
        ) from exc
    from transformers import BitsAndBytesConfig

    if quantization == "bnb-8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=getattr(torch, dtype)
    )
