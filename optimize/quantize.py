"""`tuneloop optimize quantize`: one registry of methods, each writing a complete variant folder.

| method | backend | what it does |
|---|---|---|
| int8 | onnx | weight-only 8 bits, blocks of 32, symmetric (MatMulNBits) |
| int4 | onnx | weight-only 4 bits, blocks of 32, asymmetric; output projection kept at 8 bits |
| int4-hqq | onnx | 4 bits with HQQ's float zero points: near fp32 quality, slow on CPU |
| int8-dynamic | onnx | onnxruntime `quantize_dynamic`, per-channel int8 weights and activations |
| bnb-int8 | torch | bitsandbytes LLM.int8() weights, for torch serving |
| bnb-nf4 | torch | bitsandbytes 4-bit NormalFloat weights, for torch serving |

ONNX methods take an exported folder (optimum's `onnx-fp32` or the fused `fused-fp32`); given
a merged torch folder they export it first. The variant is named after its source graph and
method, e.g. `onnx-int8`, `fused-int4`.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tuneloop.errors import MissingDependencyError, UsageError
from tuneloop.optimize.artifacts import read_artifact, staged_dir, write_artifact
from tuneloop.optimize.onnx_quant import (
    BlockQuantRecipe,
    quantize_blockwise,
    quantize_dynamic_int8,
)

log = logging.getLogger(__name__)

ONNX_METHODS = ("int8", "int4", "int4-hqq", "int8-dynamic")
TORCH_METHODS = ("bnb-int8", "bnb-nf4")
METHODS = ONNX_METHODS + TORCH_METHODS
# The output projection (49k x 576) is the matrix whose errors reach the logits directly; at
# 4 bits it alone costs most of the perplexity increase, at 8 bits almost nothing.
DEFAULT_KEEP_8BIT = ("lm_head",)


@dataclass
class QuantizeOptions:
    """Options of the weight-only ONNX methods (int8, int4)."""

    block_size: int = 32
    """Weights per quantization block (16, 32, 64, 128, 256): smaller is more accurate, larger
    is smaller and a little faster."""
    symmetric: bool | None = None
    """Symmetric blocks (no zero point); default: symmetric for int8, asymmetric for int4."""
    algorithm: str = "rtn"
    """rtn (round to nearest) or hqq (half-quadratic, calibration-free)."""
    accuracy_level: int = 4
    """MatMulNBits compute type: 4 = int8 activations (onnxruntime's fast CPU kernels), 0 = fp32
    activations (more accurate; on CPU up to 40x slower to decode)."""
    keep_8bit: list[str] = field(default_factory=lambda: list(DEFAULT_KEEP_8BIT))
    """Regular expressions over ONNX node names kept at 8 bits in an int4 model; pass
    --keep-8bit none to quantize every layer to 4 bits."""

    def __post_init__(self) -> None:
        if self.block_size not in (16, 32, 64, 128, 256):
            raise ValueError(f"--block-size {self.block_size}: use 16, 32, 64, 128 or 256")
        if self.algorithm not in ("rtn", "hqq"):
            raise ValueError(f"--algorithm {self.algorithm!r}: use rtn or hqq")
        if self.accuracy_level not in (0, 1, 2, 3, 4):
            raise ValueError(f"--accuracy-level {self.accuracy_level}: use 0 to 4")
        self.keep_8bit = [p for p in self.keep_8bit if p.lower() != "none"]

    def recipe(self, bits: int) -> BlockQuantRecipe:
        symmetric = bits == 8 if self.symmetric is None else self.symmetric
        return BlockQuantRecipe(
            bits=bits,
            block_size=self.block_size,
            symmetric=symmetric,
            algorithm=self.algorithm,
            accuracy_level=self.accuracy_level or None,
            keep_8bit=tuple(self.keep_8bit),
        )


def quantize_model(
    model: Path, method: str, out: Path, options: QuantizeOptions | None = None, force=False
) -> Path:
    """Quantize `model` with `method` into the variant folder `out`."""
    if method not in METHODS:
        raise UsageError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    options = options or QuantizeOptions()
    model = Path(model)
    upstream = read_artifact(model)
    with staged_dir(out, force) as staging:
        if method in TORCH_METHODS:
            details = _quantize_bnb(model, method, staging)
            variant, backend = method, "torch"
        else:
            details, variant = _quantize_onnx(model, method, staging, options)
            backend = "onnx"
        write_artifact(
            staging,
            name=upstream.get("name") or model.name,
            variant=variant,
            backend=backend,
            precision=method,
            source={**upstream.get("source", {}), "model": str(model.resolve())},
            extra={"task": upstream.get("task", {}), "quantization": details},
        )
    return Path(out)


def _quantize_onnx(model: Path, method: str, staging: Path, options: QuantizeOptions):
    with tempfile.TemporaryDirectory(dir=staging.parent) as scratch:
        source = _exported(model, Path(scratch))
        _copy_side_files(source, staging)
        target = staging / "model.onnx"
        if method == "int8-dynamic":
            details = quantize_dynamic_int8(source / "model.onnx", target)
        else:
            recipe = options.recipe(8 if method == "int8" else 4)
            if method == "int4-hqq":
                recipe = BlockQuantRecipe(**{**recipe.__dict__, "algorithm": "hqq"})
            details = quantize_blockwise(source / "model.onnx", target, recipe)
            details["recipe"] = {**recipe.__dict__, "keep_8bit": list(recipe.keep_8bit)}
        prefix = "fused" if read_artifact(source).get("format") == "onnx-fused" else "onnx"
    return details, f"{prefix}-{method}"


def _exported(model: Path, scratch: Path) -> Path:
    """`model` if it is an ONNX folder, else its optimum export in `scratch`."""
    from tuneloop.optimize.runtime import detect_backend

    if detect_backend(model) == "onnx":
        return model
    from tuneloop.optimize.export import export_onnx

    log.info("%s is a torch model: exporting it to ONNX first", model)
    return export_onnx(model, scratch / "onnx-fp32")[0]


def _copy_side_files(source: Path, staging: Path) -> None:
    """Tokenizer, configs and profile: everything but the weights and the old reports."""
    skip = {"model.onnx", "model.onnx.data", "model.onnx_data", "parity.json"}
    for path in source.iterdir():
        if path.is_file() and path.name not in skip and not path.name.startswith(("verify.", ".")):
            shutil.copy2(path, staging / path.name)
    (staging / "tuneloop_artifact.json").unlink(missing_ok=True)


def _quantize_bnb(model: Path, method: str, staging: Path) -> dict:
    import importlib.util

    from tuneloop.optimize.runtime import detect_backend

    if importlib.util.find_spec("bitsandbytes") is None:
        raise MissingDependencyError(
            f"--method {method} needs bitsandbytes: pip install 'tuneloop[gpu]'"
        )
    if detect_backend(model) != "torch":
        raise UsageError(f"--method {method} quantizes a merged torch model; {model} is ONNX")
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from tuneloop.optimize.runtime import folder_tokenizer

    if method == "bnb-nf4":
        config = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32
        )
    else:
        config = BitsAndBytesConfig(load_in_8bit=True)
    quantized = AutoModelForCausalLM.from_pretrained(
        model, quantization_config=config, dtype=torch.float32, device_map="cpu"
    )
    quantized.save_pretrained(staging, safe_serialization=True)
    folder_tokenizer(model).save_pretrained(staging)
    for name in ("reference_profile.json",):
        if (model / name).is_file():
            shutil.copy2(model / name, staging / name)
    return {"bitsandbytes": config.to_dict()}
