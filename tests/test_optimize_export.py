"""ONNX export parity, quantization graphs and the shared decode loop, on a tiny model."""

from __future__ import annotations

import numpy as np
import pytest
from optimize_helpers import demo_token_ids, make_adapter

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def merged_dir(tiny_model_dir, tmp_path_factory):
    from tuneloop.base_model import load_model
    from tuneloop.optimize.merge import merge_adapter

    tmp = tmp_path_factory.mktemp("export")
    adapter = make_adapter(load_model(str(tiny_model_dir)), tmp / "adapter")
    return merge_adapter(adapter, tmp / "merged", base=str(tiny_model_dir))


@pytest.fixture(scope="module")
def onnx_dir(merged_dir):
    from tuneloop.optimize.export import export_onnx

    return export_onnx(merged_dir, merged_dir.parent / "onnx-fp32")[0]


@pytest.fixture(scope="module")
def fused_dir(merged_dir):
    pytest.importorskip("onnxruntime_genai", reason="the fused graph is in the [fused] extra")
    from tuneloop.optimize.export import export_onnx

    return export_onnx(merged_dir, merged_dir.parent / "fused-fp32", fmt="onnx-fused")[0]


def test_fused_graph_matches_torch(fused_dir):
    from tuneloop.optimize.artifacts import read_artifact

    manifest = read_artifact(fused_dir)
    assert manifest["variant"] == "fused-fp32" and manifest["format"] == "onnx-fused"
    assert manifest["parity"]["max_abs_logit_diff"] < 1e-4
    assert manifest["parity"]["top1_agreement"] == 1.0


def test_fused_graph_reads_each_activation_with_one_matmul(fused_dir):
    """The MLP's gate and up projections are one MatMul (`shared_input_matmuls`)."""
    nodes = _onnx_graph(fused_dir).node
    inputs = [n.input[0] for n in nodes if n.op_type == "MatMul"]
    assert len(inputs) == len(set(inputs))
    assert any("gate_proj" in n.name and "up_proj" in n.name for n in nodes)


def _onnx_graph(folder):
    import onnx

    return onnx.load(str(folder / "model.onnx"), load_external_data=False).graph


def test_onnx_fp32_matches_torch_on_real_prompts(onnx_dir, merged_dir, smollm2_tokenizer):
    from tuneloop.optimize.artifacts import read_artifact
    from tuneloop.optimize.runtime import load_causal_lm

    parity = read_artifact(onnx_dir)["parity"]
    assert parity["max_abs_logit_diff"] < 1e-4 and parity["top1_agreement"] == 1.0
    torch_model, onnx_model = load_causal_lm(merged_dir), load_causal_lm(onnx_dir)
    for ids in demo_token_ids(smollm2_tokenizer, 3):
        expected, got = torch_model.sequence_logits(ids), onnx_model.sequence_logits(ids)
        assert np.abs(expected - got).max() < 1e-4
        assert (expected.argmax(-1) == got.argmax(-1)).all()


def test_output_layer_is_untied_so_quantizers_see_it(onnx_dir):
    graph = _onnx_graph(onnx_dir)
    initializers = {init.name for init in graph.initializer}
    lm_head = [n for n in graph.node if n.op_type == "MatMul" and "lm_head" in n.name]
    assert len(lm_head) == 1 and lm_head[0].input[1] in initializers


def test_optimum_loads_the_export_and_agrees_with_our_loop(onnx_dir, smollm2_tokenizer):
    from optimum.onnxruntime import ORTModelForCausalLM

    from tuneloop.optimize.runtime import load_causal_lm

    ours = load_causal_lm(onnx_dir)
    optimum_model = ORTModelForCausalLM.from_pretrained(onnx_dir)
    ids = demo_token_ids(smollm2_tokenizer, 1)[0][:40]
    import torch

    out = optimum_model.generate(
        input_ids=torch.tensor([ids]), max_new_tokens=12, min_new_tokens=12, do_sample=False
    )
    assert out[0, len(ids) :].tolist() == ours.generate([ids], 12, stop_at_eos=False).tokens[0]


@pytest.mark.parametrize("backend", ["torch", "onnx", "fused"])
def test_batched_generation_equals_one_by_one(backend, request, smollm2_tokenizer):
    """Left padding, positions and the cache must not change what each sequence produces."""
    from tuneloop.optimize.runtime import load_causal_lm

    fixture = {"torch": "merged_dir", "onnx": "onnx_dir", "fused": "fused_dir"}[backend]
    model = load_causal_lm(request.getfixturevalue(fixture))
    prompts = [ids[: 20 + 9 * i] for i, ids in enumerate(demo_token_ids(smollm2_tokenizer, 3))]
    batched = model.generate(prompts, 10, stop_at_eos=False)
    assert batched.tokens == [model.generate([p], 10, stop_at_eos=False).tokens[0] for p in prompts]
    assert batched.decode_steps == 9 and batched.decode_tokens_per_s > 0


def _matmulnbits_bits(folder) -> dict[str, int]:
    nodes = [n for n in _onnx_graph(folder).node if n.op_type == "MatMulNBits"]
    return {n.name: next(a.i for a in n.attribute if a.name == "bits") for n in nodes}


def test_int8_quantizes_every_matmul_including_the_output_layer(onnx_dir, tmp_path):
    from tuneloop.optimize.quantize import quantize_model

    out = quantize_model(onnx_dir, "int8", tmp_path / "int8")
    bits = _matmulnbits_bits(out)
    plain = [n for n in _onnx_graph(out).node if n.op_type == "MatMul"]
    assert set(bits.values()) == {8} and any("lm_head" in name for name in bits)
    assert all(n.input[1] not in {i.name for i in _onnx_graph(out).initializer} for n in plain)
    assert (out / "tokenizer.json").is_file() and (out / "tuneloop_artifact.json").is_file()


def test_int4_keeps_the_output_layer_at_8_bits_unless_told(onnx_dir, tmp_path):
    from tuneloop.optimize.quantize import QuantizeOptions, quantize_model

    mixed = _matmulnbits_bits(quantize_model(onnx_dir, "int4", tmp_path / "int4"))
    assert {b for n, b in mixed.items() if "lm_head" in n} == {8}
    assert {b for n, b in mixed.items() if "lm_head" not in n} == {4}
    options = QuantizeOptions(keep_8bit=["none"], block_size=64)
    pure = _matmulnbits_bits(quantize_model(onnx_dir, "int4", tmp_path / "pure", options))
    assert set(pure.values()) == {4}


def test_quantize_options_are_checked_before_any_work():
    from tuneloop.optimize.quantize import QuantizeOptions

    with pytest.raises(ValueError, match="block-size"):
        QuantizeOptions(block_size=48)
    with pytest.raises(ValueError, match="algorithm"):
        QuantizeOptions(algorithm="gptq")


def test_bnb_needs_bitsandbytes_or_says_how(merged_dir, tmp_path):
    import importlib.util

    from tuneloop.errors import MissingDependencyError
    from tuneloop.optimize.quantize import quantize_model

    if importlib.util.find_spec("bitsandbytes") is not None:
        pytest.skip("bitsandbytes is installed; the bnb round trip is tested elsewhere")
    with pytest.raises(MissingDependencyError, match=r"tuneloop\[gpu\]"):
        quantize_model(merged_dir, "bnb-nf4", tmp_path / "nf4")


@pytest.mark.parametrize("method", ["bnb-int8", "bnb-nf4"])
def test_bitsandbytes_variants_load_and_generate(method, merged_dir, smollm2_tokenizer, tmp_path):
    pytest.importorskip("bitsandbytes", reason="bitsandbytes is in the [gpu] extra")
    from tuneloop.optimize.artifacts import read_artifact
    from tuneloop.optimize.quantize import quantize_model
    from tuneloop.optimize.runtime import load_causal_lm

    out = quantize_model(merged_dir, method, tmp_path / method)
    manifest = read_artifact(out)
    assert manifest["backend"] == "torch" and manifest["precision"] == method
    reference, quantized = load_causal_lm(merged_dir), load_causal_lm(out)
    assert quantized.backend == "torch"
    ids = demo_token_ids(smollm2_tokenizer, 1)[0]
    ref, got = reference.sequence_logits(ids), quantized.sequence_logits(ids)
    assert got.shape == ref.shape and np.isfinite(got).all()
    if method == "bnb-int8":  # LLM.int8() keeps outliers in 16 bits: near-identical choices
        assert (ref.argmax(-1) == got.argmax(-1)).mean() > 0.9
    assert len(quantized.generate([ids[:30]], 5, stop_at_eos=False).tokens[0]) == 5


def test_fused_graph_computes_logits_only_where_asked(fused_dir, tmp_path):
    """Prefill and decode project the last position only; scoring still gets every position,
    and a folder exported before the edit (no `logits_positions` input) still loads."""
    import shutil

    import onnx
    import onnxruntime as ort

    from tuneloop.optimize.kv_slots import KVSlots
    from tuneloop.optimize.logits_positions import LOGITS_POSITIONS, add_logits_positions

    assert LOGITS_POSITIONS in {i.name for i in _onnx_graph(fused_dir).input}
    assert not add_logits_positions(fused_dir / "model.onnx"), "the edit is done once"

    old = tmp_path / "before-the-edit.onnx"
    model = onnx.load(str(fused_dir / "model.onnx"))
    gather = next(n for n in model.graph.node if n.input[-1:] == [LOGITS_POSITIONS])
    head = next(n for n in model.graph.node if gather.output[0] in n.input)
    head.input[0] = gather.input[0]
    model.graph.node.remove(gather)
    model.graph.input.remove(next(i for i in model.graph.input if i.name == LOGITS_POSITIONS))
    onnx.save(model, str(old))  # weights loaded above: saved inside the file
    shutil.copy(fused_dir / "model.onnx", tmp_path / "edited.onnx")
    for data in fused_dir.glob("model.onnx.data"):
        shutil.copy(data, tmp_path / data.name)  # the edited graph's external weights

    ids = list(range(5, 17))
    results = {}
    for name in ("before-the-edit.onnx", "edited.onnx"):
        slots = KVSlots(ort.InferenceSession(str(tmp_path / name)), 2)
        every = slots.prefill(0, ids, all_logits=True).copy()
        last = slots.prefill(1, ids).copy()
        step = slots.decode(np.array([3, 3])).copy()
        results[name] = (slots.picks_positions, every, last, step)
    assert [r[0] for r in results.values()] == [False, True]
    for _picks, every, last, step in results.values():
        assert every.shape == (len(ids), every.shape[1])
        np.testing.assert_allclose(last, every[-1], atol=1e-5)
        np.testing.assert_allclose(step[0], step[1], atol=1e-5)
    before, after = results.values()
    for a, b in zip(before[1:], after[1:], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
