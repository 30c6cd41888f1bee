"""Export a merged model to ONNX with a KV cache (optimum, `text-generation-with-past`).

The result loads in optimum's `ORTModelForCausalLM` and in tuneloop's own decode loop. Two
things happen around optimum's exporter:
- a tied output layer is untied first. Exported as is, the output projection is a Transpose of
  the embedding table, which weight quantizers skip, so the largest matrix of a small model
  would stay fp32 in every quantized variant;
- parity with torch is measured on real prompts (max absolute logit difference and top-1
  agreement), recorded in the manifest, and the export fails when it is out of tolerance.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tuneloop.errors import ExportError, MissingDependencyError
from tuneloop.optimize.artifacts import read_artifact, save_json, staged_dir, write_artifact
from tuneloop.optimize.logits_positions import add_logits_positions
from tuneloop.optimize.shared_input_matmuls import merge_shared_input_matmuls
from tuneloop.progress import Steps

log = logging.getLogger(__name__)

TASK = "text-generation-with-past"
FORMATS = ("onnx", "onnx-fused")
COPIED = ("reference_profile.json", "generation_config.json")
# fp32 ONNX Runtime fuses and reorders float ops; on SmolLM2-135M logits (magnitude ~20) the
# difference stays near 1e-4. Far beyond that, the graph is wrong, not merely rounded.
MAX_ABS_LOGIT_DIFF = 1e-2
MIN_TOP1_AGREEMENT = 0.99


@dataclass(frozen=True)
class Parity:
    """How closely the ONNX model reproduces the torch model's logits."""

    prompts: int
    positions: int
    max_abs_logit_diff: float
    mean_abs_logit_diff: float
    top1_agreement: float


def export_onnx(
    model: Path,
    out: Path,
    force: bool = False,
    parity_data: Path | None = None,
    fmt: str = "onnx",
):
    """Export the merged model folder `model` to `out` and check parity with torch.

    `fmt` "onnx" is optimum's graph (loads in `ORTModelForCausalLM`); "onnx-fused" is
    onnxruntime-genai's model builder graph (fused attention, rotary and norms: the same
    inputs and outputs, several times faster to decode on CPU).
    """
    from tuneloop.optimize.runtime import folder_tokenizer

    model = Path(model)
    torch_model = load_untied(model)
    tokenizer = folder_tokenizer(model)
    steps = Steps(f"export {fmt}", 2, log)
    with staged_dir(out, force) as staging:
        with steps.step(f"the graph of {model}"):
            if fmt == "onnx-fused":
                export_fused(model, staging)
            else:
                _export(torch_model, staging)
        tokenizer.save_pretrained(staging)
        for name in COPIED:
            if (model / name).is_file():
                shutil.copy2(model / name, staging / name)
        with steps.step("parity with torch"):
            prompts = parity_prompts(tokenizer, parity_data)
            parity = measure_parity(torch_model, staging, prompts)
        save_json(staging / "parity.json", asdict(parity))
        upstream = read_artifact(model)
        write_artifact(
            staging,
            name=upstream.get("name") or model.name,
            variant="fused-fp32" if fmt == "onnx-fused" else "onnx-fp32",
            backend="onnx",
            precision="fp32",
            source={**upstream.get("source", {}), "model": str(model.resolve())},
            extra={"task": upstream.get("task", {}), "parity": asdict(parity), "format": fmt},
        )
        check_parity(parity)
    steps.finish()
    return Path(out), parity


def load_untied(folder: Path):
    """The model in fp32 eval mode, its output layer a separate copy of the embedding."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    if model.config.tie_word_embeddings:
        embedding = model.get_input_embeddings().weight
        model.get_output_embeddings().weight = torch.nn.Parameter(embedding.detach().clone())
        model.config.tie_word_embeddings = False
    return model


def _export(model, out: Path) -> None:
    import warnings

    from optimum.exporters.onnx import onnx_export_from_model

    log.info("exporting to ONNX (%s) into %s", TASK, out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.onnx tracer warnings about python control flow
        # optimum's own validation runs random inputs; measure_parity uses real prompts.
        onnx_export_from_model(model, out, task=TASK, do_validation=False)


def export_fused(model: Path, out: Path) -> None:
    """Build the fused fp32 graph with onnxruntime-genai's model builder (in a subprocess:
    it prints progress bars and holds a second copy of the weights), then make it compute
    logits only at the positions asked for (`logits_positions`) and read each activation
    with one MatMul (`shared_input_matmuls`)."""
    import importlib.util
    import subprocess
    import sys
    import tempfile

    if importlib.util.find_spec("onnxruntime_genai") is None:
        raise MissingDependencyError(
            "--format onnx-fused needs onnxruntime-genai's model builder: "
            "pip install 'tuneloop[fused]'"
        )
    with tempfile.TemporaryDirectory() as cache:
        command = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(model)]
        command += ["-o", str(out), "-p", "fp32", "-e", "cpu", "-c", cache]
        command += ["--extra_options", "hf_token=false"]
        log.info("building the fused ONNX graph (onnxruntime-genai model builder)")
        done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise ExportError(f"onnxruntime-genai's model builder failed on {model}:\n{tail}")
    add_logits_positions(out / "model.onnx")
    merge_shared_input_matmuls(out / "model.onnx")


def parity_prompts(tokenizer, data: Path | None, count: int = 8) -> list[list[int]]:
    """Token ids of `count` real examples (prompt and answer) from `data` or the demo set."""
    from tuneloop.data_formats import read_examples
    from tuneloop.demo import DEMO_DATA

    examples = read_examples(data or DEMO_DATA)[:count]
    return [tokenizer.apply_chat_template(ex["messages"]) for ex in examples]


def measure_parity(torch_model, onnx_dir: Path, prompts: list[list[int]]) -> Parity:
    import torch

    from tuneloop.optimize.ort_runtime import OrtCausalLM

    onnx_model = OrtCausalLM.load(onnx_dir)
    max_diff, diffs, agree, positions = 0.0, [], 0, 0
    for ids in prompts:
        with torch.inference_mode():
            expected = torch_model(torch.tensor([ids])).logits[0].numpy()
        got = onnx_model.sequence_logits(ids)
        diff = np.abs(expected - got)
        max_diff = max(max_diff, float(diff.max()))
        diffs.append(float(diff.mean()))
        agree += int((expected.argmax(-1) == got.argmax(-1)).sum())
        positions += len(ids)
    return Parity(len(prompts), positions, max_diff, float(np.mean(diffs)), agree / positions)


def check_parity(parity: Parity) -> None:
    if parity.max_abs_logit_diff > MAX_ABS_LOGIT_DIFF or parity.top1_agreement < MIN_TOP1_AGREEMENT:
        raise ExportError(
            f"ONNX export does not match torch: max |logit diff| {parity.max_abs_logit_diff:.3g} "
            f"(limit {MAX_ABS_LOGIT_DIFF}), top-1 agreement {parity.top1_agreement:.4f} "
            f"(limit {MIN_TOP1_AGREEMENT}) over {parity.positions} positions"
        )
