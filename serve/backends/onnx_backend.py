"""The ONNX backend: one onnxruntime session per optimized variant (fp32, int8, int4, ...).

A variant folder is what `tuneloop optimize` exports with optimum's `text-generation-with-past`
task: inputs `input_ids`, `attention_mask`, `position_ids` and `past_key_values.N.key/value`,
outputs `logits` and `present.N.key/value`. The scheduler drives the session directly, one
forward pass per step over the whole batch, with the same left-padded cache as the torch
backend; the session concatenates the new keys and values itself.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from tuneloop.base_model import ResolvedBase, load_tokenizer
from tuneloop.errors import MissingDependencyError, ModelLoadError
from tuneloop.serve.backends.base import ForwardInput, ModelInfo
from tuneloop.serve.batch_cache import KV

log = logging.getLogger(__name__)

ONNX_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


class OnnxBackend:
    def __init__(self, session, tokenizer, info: ModelInfo, eos_token_ids: frozenset[int]):
        self.session = session
        self.tokenizer = tokenizer
        self.info = info
        self.eos_token_ids = eos_token_ids
        inputs = {i.name: i for i in session.get_inputs()}
        self._layers = sum(1 for name in inputs if name.endswith(".key"))
        first = inputs.get("past_key_values.0.key")
        if first is None:
            raise ModelLoadError(
                f"{info.path}: the ONNX model has no past_key_values inputs; export it with "
                "the text-generation-with-past task (`tuneloop optimize export` does)"
            )
        self._kv_heads, self._head_dim = first.shape[1], first.shape[3]
        self._kv_dtype = ONNX_TYPES.get(first.type, np.float32)
        self._has_positions = "position_ids" in inputs
        self.fused = "past_key_values.0.key" in inputs and not self._has_positions
        self._outputs = ["logits"] + [
            f"present.{i}.{part}" for i in range(self._layers) for part in ("key", "value")
        ]

    @classmethod
    def load(cls, spec) -> OnnxBackend:
        folder = Path(spec.path)
        session = _session(model_file(folder), spec.threads, spec.device)
        config = _read_json(folder / "config.json")
        tokenizer = load_tokenizer(ResolvedBase(str(folder), folder, "local"))
        info = ModelInfo(
            name=spec.name,
            backend="onnx",
            precision=spec.precision or "fp32",
            path=folder,
            max_context=int(config.get("max_position_embeddings", 2048)),
            extra={"base": spec.base_label or ""},
        )
        return cls(session, tokenizer, info, _eos_ids(folder, config, tokenizer))

    @property
    def adapters(self) -> list[str]:
        return []

    def load_adapter(self, name: str, folder: Path) -> None:
        raise ModelLoadError(
            f"{self.info.name} is an ONNX variant with its adapter merged in; load adapters on "
            "a torch model"
        )

    unload_adapter = load_adapter

    def runner(self, max_rows: int, prefix_cache: bool = True, speculate: bool = True):
        """The runner that drives this variant: slots for the fused graph (with the prompt
        prefix cache and the folder's drafts unless told otherwise), else left padding."""
        if self.fused:
            from tuneloop.optimize.ngram_draft import variant_drafts
            from tuneloop.serve.slot_runner import SlotRunner

            drafts = variant_drafts(self.info.path, self.session) if speculate else None
            return SlotRunner(self, max_rows, prefix_cache=prefix_cache, drafts=drafts)
        from tuneloop.serve.batch_runner import BatchRunner

        return BatchRunner(self)

    def forward(self, batch: ForwardInput) -> tuple[torch.Tensor, KV]:
        if self.fused:
            raise ModelLoadError(f"{self.info.path}: a fused graph runs only through runner()")
        rows = batch.input_ids.shape[0]
        feeds = {
            "input_ids": batch.input_ids.numpy(),
            "attention_mask": batch.attention_mask.numpy(),
        }
        if self._has_positions:
            feeds["position_ids"] = batch.position_ids.numpy()
        empty = np.zeros((rows, self._kv_heads, 0, self._head_dim), dtype=self._kv_dtype)
        for i in range(self._layers):
            keys, values = batch.past[i] if batch.past else (None, None)
            feeds[f"past_key_values.{i}.key"] = empty if keys is None else _numpy(keys)
            feeds[f"past_key_values.{i}.value"] = empty if values is None else _numpy(values)
        outputs = self.session.run(self._outputs, feeds)
        logits = torch.from_numpy(outputs[0][:, -1]).float()
        presents = [torch.from_numpy(array) for array in outputs[1:]]
        return logits, list(zip(presents[0::2], presents[1::2], strict=True))


def model_file(folder: Path) -> Path:
    """The variant's .onnx file: the only one, or `model.onnx` when there are several."""
    files = sorted(folder.glob("*.onnx"))
    if len(files) == 1:
        return files[0]
    if (folder / "model.onnx").is_file():
        return folder / "model.onnx"
    found = ", ".join(f.name for f in files) or "none"
    raise ModelLoadError(f"{folder}: expected one .onnx model file (found: {found})")


def _session(path: Path, threads: int | None, device: str):
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise MissingDependencyError(
            "serving ONNX variants needs onnxruntime: pip install 'tuneloop[onnx]'"
        ) from exc
    from tuneloop.optimize.ort_runtime import session_options

    # Workers spin within a run and park when it returns: between two runs the engine thread
    # samples and hands tokens to the event loop, on the same cores. Measured with two servers
    # side by side on 2 cores, load alternating between them: against no spinning at all,
    # 1.18x tok/s with 1 streaming user and 1.16x with 16; against spinning after runs too,
    # 1.06x and 0.99x.
    options = session_options(threads, spin_after_runs=False)
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda") or (
        device == "auto" and "CUDAExecutionProvider" in ort.get_available_providers()
    ):
        providers.insert(0, "CUDAExecutionProvider")
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
        raise ModelLoadError(f"onnxruntime cannot load {path}: {exc}") from exc


def _eos_ids(folder: Path, config: dict, tokenizer) -> frozenset[int]:
    generation = _read_json(folder / "generation_config.json")
    configured = generation.get("eos_token_id", config.get("eos_token_id"))
    ids = set(configured if isinstance(configured, list) else [configured])
    ids.add(tokenizer.eos_token_id)
    return frozenset(i for i in ids if i is not None)


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.numpy())


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from exc
