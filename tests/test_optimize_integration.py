"""The optimize stage on the real embedded model: merge parity, ONNX parity, int8 quality.

One adapter with random, non-zero LoRA weights (training is not what is tested here), one
merge and one ONNX export for the whole module: the export of the 135M model is the slow part.
"""

from __future__ import annotations

import numpy as np
import pytest
from optimize_helpers import demo_token_ids, make_adapter, write_demo_subset

pytestmark = [pytest.mark.integration, pytest.mark.slow]
pytest.importorskip("onnxruntime")

# Limits stated in the README: merged vs PEFT in fp32, ONNX Runtime vs torch in fp32.
MERGE_MAX_ABS = 1e-3
ONNX_MAX_ABS = 1e-2


@pytest.fixture(scope="module")
def real(embedded_model_dir, tmp_path_factory):
    from tuneloop.base_model import load_model
    from tuneloop.optimize.export import export_onnx
    from tuneloop.optimize.merge import merge_adapter

    tmp = tmp_path_factory.mktemp("real")
    base = load_model(str(embedded_model_dir))
    adapter = make_adapter(base, tmp / "adapter", seed=3)
    merged = merge_adapter(adapter, tmp / "merged", base=str(embedded_model_dir))
    onnx = export_onnx(merged, tmp / "onnx-fp32")[0]
    return {"adapter": adapter, "merged": merged, "onnx": onnx, "tmp": tmp}


def test_merged_model_matches_peft_on_real_prompts(real, embedded_model_dir, smollm2_tokenizer):
    import torch

    from tuneloop.base_model import ResolvedBase, load_model
    from tuneloop.optimize.adapter_source import read_adapter
    from tuneloop.optimize.merge import load_peft_model

    peft_model = load_peft_model(
        read_adapter(real["adapter"]), ResolvedBase("embedded", embedded_model_dir, "local")
    )
    merged = load_model(str(real["merged"]))
    for ids in demo_token_ids(smollm2_tokenizer, 4):
        with torch.inference_mode():
            expected = peft_model(torch.tensor([ids])).logits[0].numpy()
            got = merged(torch.tensor([ids])).logits[0].numpy()
        assert np.abs(expected - got).max() < MERGE_MAX_ABS
        assert (expected.argmax(-1) == got.argmax(-1)).mean() == 1.0


def test_onnx_fp32_parity_is_recorded_and_within_tolerance(real):
    from tuneloop.optimize.artifacts import read_artifact

    parity = read_artifact(real["onnx"])["parity"]
    assert parity["positions"] > 500
    assert parity["max_abs_logit_diff"] < ONNX_MAX_ABS
    assert parity["top1_agreement"] >= 0.99


def test_blockwise_int8_costs_under_one_percent_perplexity(real, tmp_path):
    from tuneloop.data_formats import read_examples
    from tuneloop.optimize.quality import compare, tokenize_for_scoring
    from tuneloop.optimize.quantize import quantize_model
    from tuneloop.optimize.runtime import load_causal_lm

    int8 = quantize_model(real["onnx"], "int8", tmp_path / "int8")
    reference, candidate = load_causal_lm(real["merged"]), load_causal_lm(int8)
    tokenizer = reference.tokenizer
    examples = read_examples(write_demo_subset(tmp_path / "val.jsonl", 12))
    scored = [tokenize_for_scoring(tokenizer, ex, tokenizer.eos_token_id) for ex in examples]
    report = compare(reference, candidate, scored)
    assert report.positions > 300
    assert report.perplexity_change < 0.01
    assert report.mean_kl < 0.05
