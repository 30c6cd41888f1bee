"""Command-line entry points of the optimize stage: `tuneloop optimize merge|export|quantize|
verify|draft|all`. Each is a thin wrapper; the work lives in the modules named in its body.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from tuneloop.errors import UsageError
from tuneloop.optimize.gate import GateThresholds
from tuneloop.optimize.ngram_draft import DraftOptions
from tuneloop.optimize.quantize import QuantizeOptions
from tuneloop.optimize.verify import VerifyOptions

log = logging.getLogger(__name__)

Method = Literal["int8", "int4", "int4-hqq", "int8-dynamic", "bnb-int8", "bnb-nf4"]


def merge(*, adapter: Path, out: Path, base: str | None = None, force: bool = False) -> int:
    """Merge a LoRA/DoRA adapter into its base model and save safetensors plus a manifest.

    The merged folder is a plain transformers model (safetensors, tokenizer) with
    tuneloop_artifact.json naming the base, the adapter and their hashes. An adapter trained
    for another base, or a 4-bit base, is refused before anything loads.

    Args:
        adapter: folder written by `tuneloop train` (or any PEFT adapter folder).
        out: folder for the merged model.
        base: base model (default: the one in the adapter's manifest, else the embedded model).
        force: replace --out if it exists.
    """
    from tuneloop.optimize.merge import merge_adapter

    print(merge_adapter(adapter, out, base, force))
    return 0


def export(
    *,
    model: Path,
    out: Path,
    format: Literal["onnx", "onnx-fused"] = "onnx",
    data: Path | None = None,
    force: bool = False,
) -> int:
    """Export a merged model to ONNX with a KV cache, and check parity with torch.

    `onnx` is optimum's export (loads in optimum's ORTModelForCausalLM); `onnx-fused` is
    onnxruntime-genai's model builder graph (fused attention and norms, much faster to decode
    on CPU; needs `pip install 'tuneloop[fused]'`). Max |logit difference| and top-1 agreement
    with torch on real prompts go into the manifest; the export fails when they are off.

    Args:
        model: merged model folder (from `tuneloop optimize merge`).
        out: folder for the exported model.
        format: onnx (optimum) or onnx-fused (onnxruntime-genai builder).
        data: data file whose first examples are the parity prompts (default: the demo set).
        force: replace --out if it exists.
    """
    from tuneloop.optimize.export import export_onnx

    folder, parity = export_onnx(model, out, force, data, fmt=format)
    print(
        f"{folder}: max |logit diff| {parity.max_abs_logit_diff:.2g}, "
        f"top-1 agreement {parity.top1_agreement:.4f} over {parity.positions} positions"
    )
    return 0


def quantize(
    *,
    model: Path,
    method: Method,
    out: Path,
    options: QuantizeOptions,
    force: bool = False,
) -> int:
    """Quantize an exported or merged model: int8, int4, int4-hqq, int8-dynamic, bnb-int8/nf4.

    int8 and int4 are weight-only block-wise quantization (onnxruntime MatMulNBits): int8
    symmetric in blocks of 32 costs well under 1% perplexity on small models; int4 keeps the
    output projection at 8 bits by default. int4-hqq uses HQQ's float zero points (near fp32
    quality here, but onnxruntime's CPU kernels run it slowly). int8-dynamic is onnxruntime's
    quantize_dynamic.
    bnb-int8 / bnb-nf4 quantize a merged torch model with bitsandbytes, for torch serving.
    Run `tuneloop optimize verify` on the result before serving it.

    Args:
        model: an exported ONNX folder (or a merged torch folder, exported first).
        method: quantization method.
        out: folder for the quantized model.
        options: weight-only quantization settings
        force: replace --out if it exists.
    """
    from tuneloop.optimize.quantize import quantize_model

    print(quantize_model(model, method, out, options, force))
    return 0


def verify(
    *,
    reference: Path,
    candidate: Path,
    data: Path,
    thresholds: GateThresholds,
    options: VerifyOptions,
) -> int:
    """The quality gate: compare a candidate with its fp32 reference; exit 1 when it fails.

    Measures perplexity and its change, KL divergence and top-1 agreement (teacher-forced on
    the validation examples), task accuracy when the answers are JSON with a label, size, load
    time, prefill/decode tokens/s at batch 1 and 8, and peak memory. Writes verify.json,
    verify.md and verify.png into the candidate folder and records the verdict in its
    tuneloop_artifact.json: `tuneloop serve` never loads a variant that failed.

    Args:
        reference: the fp32 reference model folder (the merged model).
        candidate: the optimized model folder to check.
        data: validation file (JSONL or CSV, any format `tuneloop data check` accepts).
        thresholds: gate thresholds
        options: what to measure
    """
    from tuneloop.optimize.verify import verify_candidate

    result = verify_candidate(reference, candidate, data, thresholds, options)
    gate = result["gate"]
    print(f"{candidate}: gate {gate['status']} (report: {Path(candidate) / 'verify.md'})")
    for failure in gate["failures"]:
        print(f"  - {failure}")
    return 0 if gate["status"] == "passed" else 1


def draft(*, model: Path, data: Path, options: DraftOptions) -> int:
    """Build the drafts for speculative decoding from the fine-tune's training data.

    The model (its smallest gate-passing fused variant) answers up to --model-answers of the
    data's prompts greedily; the table counts which token followed each 1..order tokens in
    those answers (or, with --model-answers 0, in the data's own answers) and keeps the
    confident ones (draft_ngrams.json). With --heads (the default), two draft heads are also
    trained on the variant's hidden states over those prompts and answers (about a minute)
    and written into each fused variant's graph: they guess the next two tokens after any
    context. A fused variant with drafts checks up to 4 drafted tokens (a look-up in the
    conversation, the heads' confident guesses, the table) per forward pass when it decodes
    one sequence, in `tuneloop serve` and in process; outputs stay the model's own choices.

    Args:
        model: a fused variant folder, or an `optimize all` folder (every fused variant in it).
        data: the adapter's training data (not the validation file: the table should not
            have seen the answers it is measured on).
        options: which contexts make the table, and the draft heads
    """
    from tuneloop.optimize.ngram_draft import add_drafts, fused_variants

    folders = fused_variants(Path(model))
    if not folders:
        raise UsageError(
            f"{model}: no fused variant (a folder with genai_config.json, or an "
            "`optimize all` folder with fused-* variants)"
        )
    table = add_drafts(folders, data, options)
    for folder in folders:
        print(f"{folder}: draft table of {len(table.table)} contexts from {data}")
    return 0


def all_variants(
    *,
    adapter: Path,
    out: Path,
    base: str | None = None,
    data: Path | None = None,
    task_data: Path | None = None,
    methods: list[str] | None = None,
    fused: bool = True,
    optimum: bool = True,
    samples: int | Literal["all"] = 64,
    threads: int = 0,
    draft_data: Path | None = None,
    draft_answers: int = 500,
    force: bool = False,
) -> int:
    """Merge, export, quantize (int8, int4) and verify each variant, with a summary table.

    Writes OUT/merged (the fp32 reference), OUT/onnx-fp32, OUT/onnx-int8, OUT/onnx-int4 and,
    with onnxruntime-genai installed, the fused fused-fp32/int8/int4; each verified against the
    merged model. summary.md/json/png compare them; `recommended` is the fastest variant that
    passed the gate, the one `tuneloop serve --model-dir OUT` serves by default.

    Args:
        adapter: folder written by `tuneloop train`.
        out: folder with one subfolder per variant.
        base: base model (default: the one in the adapter's manifest).
        data: validation file for the gate (default: the one named in the adapter's
            training_config.json).
        task_data: file for task accuracy, e.g. the test split (default: the --data sample).
        methods: quantization methods to make (default: int8 int4).
        fused: also build and quantize the fused onnxruntime-genai graph when installed.
        optimum: export and quantize optimum's graph (the onnx-* variants, loadable by
            optimum's ORTModelForCausalLM); --no-optimum makes the fused variants only.
        samples: examples scored per variant in every part that scores them: the first N
            of --data (teacher-forced) and of --task-data (answered), or all.
        threads: CPU threads for every model (0: one per core; 1 gives steadier figures on a
            machine that other jobs share).
        draft_data: training data for the fused variants' draft tables (`optimize draft`;
            default: the training data named in the adapter's training_config.json, if any).
        draft_answers: training prompts the fused model answers to build its drafts from
            (`optimize draft --model-answers`; about a minute per 250 on 2 cores; 0: the
            data's own answers, no generation).
        force: replace --out if it exists.
    """
    from tuneloop.optimize.pipeline import Plan, optimize_all

    if draft_answers < 0:
        raise UsageError(f"--draft-answers {draft_answers}: use 0 (the data's answers) or more")
    plan = Plan(methods=tuple(methods or ("int8", "int4")), fused=fused, optimum=optimum)
    options = VerifyOptions(samples=samples, task_data=task_data, threads=threads)
    summary = optimize_all(
        adapter,
        out,
        base=base,
        data=data,
        plan=plan,
        options=options,
        force=force,
        draft_data=draft_data,
        draft_options=DraftOptions(model_answers=draft_answers),
    )
    print((Path(out) / "summary.md").read_text(encoding="utf-8"))
    print(f"recommended: {summary['recommended'] or 'none (no variant passed the gate)'}")
    return 0
