"""ONNX Runtime backend for the decode loop in `runtime`, on models exported by optimum.

Speed comes from not copying the KV cache: each step binds the previous step's `present.*`
outputs (OrtValues that stay in ONNX Runtime's memory) as this step's `past_key_values.*`
inputs through IO binding, and only the logits come back to numpy.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tuneloop.errors import MissingDependencyError, ModelLoadError
from tuneloop.optimize.kv_slots import is_gqa_graph
from tuneloop.optimize.runtime import CausalLM, folder_tokenizer, position_ids

ONNX_FILE = "model.onnx"


def session_options(threads: int | None, spin_after_runs: bool = True):
    """`threads` intra-op threads (None: one per core). Worker threads poll for work between
    the operators of a run: a decode pass runs ~340 small operators, and parking and waking a
    thread for each made a pass ~15% slower. `spin_after_runs`: they also keep polling for a
    while after each run, which a tight decode loop gains from and a process with other busy
    threads (a server's event loop and sampling) loses from; without it they park as soon as
    the run returns."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not spin_after_runs:
        options.add_session_config_entry("session.force_spinning_stop", "1")
    return options


class OrtCausalLM(CausalLM):
    backend = "onnx"

    def __init__(self, folder: Path, tokenizer, session) -> None:
        super().__init__(folder, tokenizer)
        self.session = session
        inputs = {i.name: i for i in session.get_inputs()}
        self.past_names = sorted(
            (n for n in inputs if n.startswith("past_key_values.")), key=_layer_order
        )
        self.present_names = [n.replace("past_key_values.", "present.") for n in self.past_names]
        self.has_position_ids = "position_ids" in inputs
        shape = inputs[self.past_names[0]].shape  # [batch, kv heads, past length, head dim]
        self.kv_heads, self.head_dim = int(shape[1]), int(shape[3])
        self.kv_dtype = np.float16 if "float16" in inputs[self.past_names[0]].type else np.float32

    @classmethod
    def load(cls, folder: Path, threads: int | None = None) -> CausalLM:
        """The variant in `folder`; a fused (GroupQueryAttention) graph gets the slot cache."""
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise MissingDependencyError(
                "ONNX models need onnxruntime: pip install 'tuneloop[onnx]'"
            ) from exc
        path = Path(folder) / ONNX_FILE
        if not path.is_file():
            raise ModelLoadError(f"{folder} has no {ONNX_FILE}")
        try:
            session = ort.InferenceSession(
                str(path), session_options(threads), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelLoadError(f"{path}: onnxruntime cannot load it ({exc})") from exc
        if is_gqa_graph(session):
            from tuneloop.optimize.fused_runtime import FusedCausalLM

            return FusedCausalLM(folder, folder_tokenizer(folder), session)
        return cls(folder, folder_tokenizer(folder), session)

    def new_state(self, batch_size: int):
        import onnxruntime as ort

        empty = np.zeros((batch_size, self.kv_heads, 0, self.head_dim), dtype=self.kv_dtype)
        return [ort.OrtValue.ortvalue_from_numpy(empty) for _ in self.past_names]

    def forward(self, input_ids: np.ndarray, attention_mask: np.ndarray, state):
        binding = self.session.io_binding()
        binding.bind_cpu_input("input_ids", np.ascontiguousarray(input_ids))
        binding.bind_cpu_input("attention_mask", np.ascontiguousarray(attention_mask))
        if self.has_position_ids:
            positions = position_ids(attention_mask, input_ids.shape[1])
            binding.bind_cpu_input("position_ids", np.ascontiguousarray(positions))
        for name, value in zip(self.past_names, state, strict=True):
            binding.bind_ortvalue_input(name, value)
        binding.bind_output("logits", "cpu")
        for name in self.present_names:
            binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(binding)
        outputs = binding.get_outputs()
        logits = outputs[0].numpy()
        return logits.astype(np.float32, copy=False), list(outputs[1:])


def _layer_order(name: str) -> tuple[int, int]:
    """past_key_values.<layer>.<key|value> in layer order, key before value."""
    _, layer, kind = name.split(".")
    return int(layer), 0 if kind == "key" else 1
