"""Why 4-bit re-quantization of a merged adapter fails the gate on a 4-bit-born base model.

The embedded base model's weights come from a Q4_1 GGUF: per block of 32 weights, a float
scale and a float minimum. Merging an adapter adds deltas smaller than that grid's step. This
probe fake-quantizes chosen weights of the merged model in torch (4 bits, blocks of 32 along
the input dimension, as MatMulNBits does) with two block layouts and scores each with the
gate's own measures (`optimize.quality.compare`, teacher-forced on validation examples):

- `integer-zero-point`: scale = range / 15, zero point rounded to an integer (onnxruntime's
  asymmetric 4-bit, the only kind its fast kernels take);
- `float-minimum`: scale = range / 15 and the block's own minimum (Q4_1's and HQQ's layout):
  the base's own grid, so the weight error is small, but the adapter's deltas round away.

It also scores the base model itself, to show how far the fine-tune moved it.

Run: `python -m tuneloop.bench.requant_probe --merged DIR --data VAL.jsonl [--samples 32]
[--layers mlp]`.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import asdict
from pathlib import Path

LAYOUTS = ("integer-zero-point", "float-minimum")


def fake_quantize(weight, layout: str, block: int = 32):
    """`weight` [out, in] rounded to 4 bits per block of `block` inputs, back in float."""
    rows, cols = weight.shape
    blocks = weight.reshape(rows, cols // block, block)
    low, high = blocks.amin(-1, keepdim=True), blocks.amax(-1, keepdim=True)
    if layout == "integer-zero-point":
        low, high = low.clamp(max=0), high.clamp(min=0)  # the grid must contain 0
    scale = ((high - low) / 15).clamp(min=1e-12)
    if layout == "integer-zero-point":
        zero = (-low / scale).round().clamp(0, 15)
        levels = (blocks / scale + zero).round().clamp(0, 15)
        return ((levels - zero) * scale).reshape(rows, cols)
    levels = ((blocks - low) / scale).round().clamp(0, 15)
    return (levels * scale + low).reshape(rows, cols)


def probe(merged: Path, data: Path, samples: int, layers: str) -> list[dict]:
    import torch

    from tuneloop.base_model import resolve_base
    from tuneloop.optimize.artifacts import read_artifact
    from tuneloop.optimize.quality import compare, tokenize_for_scoring
    from tuneloop.optimize.torch_runtime import TorchCausalLM
    from tuneloop.optimize.verify import sample_examples

    reference = TorchCausalLM.load(merged)
    candidate = TorchCausalLM.load(merged)
    tokenizer = reference.tokenizer
    examples = sample_examples(data, samples)
    scored = [tokenize_for_scoring(tokenizer, ex, tokenizer.eos_token_id) for ex in examples]
    weights = {
        name: p.detach().clone()
        for name, p in candidate.model.named_parameters()
        if p.dim() == 2 and "embed" not in name and re.search(layers, name)
    }
    rows = []
    for layout in LAYOUTS:
        errors = []
        with torch.no_grad():
            for name, p in candidate.model.named_parameters():
                if name in weights:
                    p.copy_(fake_quantize(weights[name], layout))
                    errors.append((p - weights[name]).pow(2).mean().sqrt().item())
        quality = compare(reference, candidate, scored)
        rows.append(
            {"model": layout, "weight_rms_error": sum(errors) / len(errors), **asdict(quality)}
        )
    base_spec = read_artifact(merged).get("source", {}).get("base") or "smollm2-135m-instruct"
    base = TorchCausalLM.load(resolve_base(base_spec).path)
    rows.append({"model": "base (no adapter)", **asdict(compare(reference, base, scored))})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--merged", type=Path, required=True, help="merged fp32 model folder")
    parser.add_argument("--data", type=Path, required=True, help="validation JSONL")
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument(
        "--layers", default="mlp", help="regular expression over weight names (default: mlp)"
    )
    args = parser.parse_args(argv)
    print("| model | weight RMS error | ppl change | top-1 agree |")
    print("|---|---|---|---|")
    for row in probe(args.merged, args.data, args.samples, args.layers):
        error = row.get("weight_rms_error")
        shown = f"{error:.5f}" if error is not None else "-"
        print(
            f"| {row['model']} | {shown} | {row['perplexity_change']:+.2%} | "
            f"{row['top1_agreement']:.4f} |"
        )


if __name__ == "__main__":
    main()
