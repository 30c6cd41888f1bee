"""Read an adapter folder and check, before any model loads, that it fits the chosen base.

Accepts what `tuneloop train` writes (PEFT files plus `tuneloop_adapter.json`) and a plain PEFT
folder without the manifest. Every check reads only JSON files and safetensors headers, so a
wrong base, a missing or corrupt file fails in a second with a message naming both sides.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from tuneloop.base_model import DEFAULT_BASE, ResolvedBase, resolve_base
from tuneloop.errors import ModelLoadError, ModelNotFoundError, UsageError

log = logging.getLogger(__name__)

ADAPTER_MANIFEST = "tuneloop_adapter.json"
PEFT_CONFIG = "adapter_config.json"
PEFT_WEIGHTS = "adapter_model.safetensors"
# Size fields of a base fingerprint: a difference in any of them means the adapter cannot fit.
FINGERPRINT_SIZES = ("hidden_size", "intermediate_size", "num_hidden_layers", "vocab_size")


@dataclass(frozen=True)
class AdapterSource:
    """An adapter folder whose files were found and read."""

    path: Path
    peft_config: dict
    manifest: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.manifest.get("name") or self.path.name

    @property
    def method(self) -> str:
        if self.manifest.get("method"):
            return self.manifest["method"]
        if self.peft_config.get("use_dora"):
            return "dora"
        return str(self.peft_config.get("peft_type", "")).lower()

    @property
    def task(self) -> dict:
        return self.manifest.get("task") or {}

    @property
    def base_spec(self) -> str | None:
        base = self.manifest.get("base")
        return base.get("spec") if isinstance(base, dict) else base

    @property
    def weights(self) -> Path:
        return self.path / PEFT_WEIGHTS


def read_adapter(path: Path) -> AdapterSource:
    """Find and read an adapter folder; each missing or unreadable file is named."""
    path = Path(path)
    if not path.is_dir():
        raise ModelNotFoundError(f"adapter folder {path} does not exist")
    config_path = path / PEFT_CONFIG
    if not config_path.is_file():
        raise ModelNotFoundError(
            f"{path} has no {PEFT_CONFIG}: not a PEFT adapter folder "
            "(expected what `tuneloop train --out DIR` writes)"
        )
    if not (path / PEFT_WEIGHTS).is_file():
        pickles = [p.name for p in path.glob("adapter_model.bin")]
        why = f" ({pickles[0]} is a pickle file, never loaded)" if pickles else ""
        raise ModelNotFoundError(f"{path} has no {PEFT_WEIGHTS}{why}")
    peft_config = _read_json(config_path)
    manifest = _read_json(path / ADAPTER_MANIFEST) if (path / ADAPTER_MANIFEST).is_file() else {}
    source = AdapterSource(path.resolve(), peft_config, manifest)
    adapter_tensor_shapes(source.weights)  # fails now, naming the file, if it is corrupt
    return source


def resolve_adapter_base(source: AdapterSource, base: str | None) -> ResolvedBase:
    """`--base` if given, else the base named in the adapter's manifest, else the default."""
    spec = base or source.base_spec or DEFAULT_BASE
    if base is None:
        origin = "the adapter's manifest" if source.base_spec else "the default"
        log.info("base model: %s (from %s)", spec, origin)
    return resolve_base(spec)


def check_compatible(source: AdapterSource, base: ResolvedBase) -> None:
    """Raise when the adapter was trained for another base (architecture, sizes or shapes)."""
    config = _read_json(base.path / "config.json")
    refuse_quantized_base(base, config)
    _check_fingerprint(source, base, config)
    _check_shapes(source, base)


def refuse_quantized_base(base: ResolvedBase, config: dict) -> None:
    quant = config.get("quantization_config") or {}
    four_bit = (
        quant.get("load_in_4bit")
        or quant.get("bits") == 4
        or quant.get("quant_method") in ("gptq", "awq", "hqq")
    )
    if four_bit:
        method = quant.get("bnb_4bit_quant_type") or quant.get("quant_method", "4-bit")
        raise UsageError(
            f"base {base.spec} is quantized to 4 bits ({method}): merging LoRA weights into "
            "4-bit weights would round the adapter away. Merge into the unquantized base "
            "(--base with the full-precision model the 4-bit one was made from; a QLoRA adapter "
            "merges into it too), then quantize the merged model with "
            "`tuneloop optimize quantize --method int4` (ONNX) or `--method bnb-nf4` (torch)."
        )


def base_fingerprint(base: ResolvedBase, config: dict) -> dict:
    """Architecture, sizes and config hash: what an adapter manifest records of its base."""
    sizes = {key: config.get(key) for key in FINGERPRINT_SIZES}
    return {
        "spec": base.spec,
        "architecture": (config.get("architectures") or [config.get("model_type")])[0],
        **sizes,
        "config_sha256": hashlib.sha256((base.path / "config.json").read_bytes()).hexdigest(),
    }


def _check_fingerprint(source: AdapterSource, base: ResolvedBase, config: dict) -> None:
    recorded = source.manifest.get("base")
    if not isinstance(recorded, dict):
        return
    recorded = {**recorded, **(recorded.get("sizes") or {})}
    actual = base_fingerprint(base, config)
    differs = [
        f"{key} {recorded[key]} vs {actual[key]}"
        for key in ("architecture", *FINGERPRINT_SIZES)
        if recorded.get(key) is not None and str(recorded[key]) != str(actual[key])
    ]
    if differs:
        raise ModelLoadError(
            f"adapter {source.path} was trained for base {recorded.get('spec', '?')!r}, "
            f"not for --base {base.spec} ({'; '.join(differs)})"
        )
    recorded_hash = recorded.get("config_sha256") or recorded.get("config_hash")
    if recorded_hash and recorded_hash != actual["config_sha256"]:
        log.warning(
            "base %s has the same architecture and sizes as the adapter's base %r, but a "
            "different config.json; check it is the model the adapter was trained on",
            base.spec,
            recorded.get("spec"),
        )


def _check_shapes(source: AdapterSource, base: ResolvedBase) -> None:
    """Each LoRA matrix must fit the base weight it adapts (name and shape)."""
    base_shapes: dict[str, list[int]] = {}
    for weights in sorted(base.path.glob("*.safetensors")):
        base_shapes.update(adapter_tensor_shapes(weights))
    for key, shape in adapter_tensor_shapes(source.weights).items():
        module, kind = _lora_target(key)
        if module is None:
            continue
        base_key = f"{module}.weight"
        if base_key not in base_shapes:
            raise ModelLoadError(
                f"adapter {source.path} adapts {module}, which base {base.spec} does not have: "
                "it was trained for another architecture"
            )
        out_features, in_features = base_shapes[base_key][:2]
        expected = {"lora_A": in_features, "lora_B": out_features, "magnitude": out_features}[kind]
        got = shape[1] if kind == "lora_A" else shape[0]
        if got != expected:
            raise ModelLoadError(
                f"adapter {source.path}: {key} has shape {shape}, but base {base.spec} has "
                f"{base_key} of shape {base_shapes[base_key]}: the adapter was trained for "
                "another base model"
            )


def _lora_target(key: str) -> tuple[str | None, str]:
    """Map a PEFT tensor name to (base module name, kind); (None, '') for other tensors."""
    for marker, kind in ((".lora_A.", "lora_A"), (".lora_B.", "lora_B")):
        if marker in key:
            return _strip_peft_prefix(key.split(marker)[0]), kind
    if key.endswith(".lora_magnitude_vector") or ".lora_magnitude_vector." in key:
        return _strip_peft_prefix(key.split(".lora_magnitude_vector")[0]), "magnitude"
    return None, ""


def _strip_peft_prefix(name: str) -> str:
    prefix = "base_model.model."
    return name[len(prefix) :] if name.startswith(prefix) else name


def adapter_tensor_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor names and shapes from a safetensors header; a corrupt file is a clear error."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="np") as f:
            return {key: list(f.get_slice(key).get_shape()) for key in f.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own SafetensorError or OSError
        raise ModelLoadError(
            f"{path}: not a readable safetensors file ({type(exc).__name__}: {exc}); "
            "the file is corrupt or truncated, write it again"
        ) from exc


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(value, dict):
        raise ModelLoadError(f"{path}: expected a JSON object")
    return value
