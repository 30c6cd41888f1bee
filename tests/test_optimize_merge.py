"""`tuneloop optimize merge`: parity with PEFT, the manifest, and every refusal."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from optimize_helpers import adapter_manifest, copy_folder, demo_token_ids, make_adapter

from tuneloop import cli
from tuneloop.errors import ModelLoadError, ModelNotFoundError, UsageError
from tuneloop.optimize.adapter_source import read_adapter
from tuneloop.optimize.artifacts import read_artifact, sha256_file
from tuneloop.optimize.merge import load_peft_model, merge_adapter

# fp32 W + B·A folded into W: only rounding differs between the two paths.
MERGE_ATOL = 1e-4


@pytest.fixture(scope="module")
def tiny_base_model(tiny_model_dir):
    from tuneloop.base_model import load_model

    return load_model(str(tiny_model_dir))


@pytest.mark.parametrize("dora", [False, True], ids=["lora", "dora"])
def test_merged_logits_match_peft_on_real_prompts(
    tiny_model_dir, tiny_base_model, smollm2_tokenizer, tmp_path, dora
):
    adapter = make_adapter(tiny_base_model, tmp_path / "adapter", dora=dora)
    merged_dir = merge_adapter(adapter, tmp_path / "merged", base=str(tiny_model_dir))

    from tuneloop.base_model import ResolvedBase, load_model

    source = read_adapter(adapter)
    peft_model = load_peft_model(source, ResolvedBase("tiny", tiny_model_dir, "local"))
    merged = load_model(str(merged_dir))
    for ids in demo_token_ids(smollm2_tokenizer):
        batch = torch.tensor([ids])
        with torch.inference_mode():
            expected = peft_model(batch).logits[0].numpy()
            got = merged(batch).logits[0].numpy()
            base = tiny_base_model(batch).logits[0].numpy()
        assert np.abs(expected - got).max() < MERGE_ATOL
        assert (expected.argmax(-1) == got.argmax(-1)).all()
        assert np.abs(base - got).max() > 100 * MERGE_ATOL, "the adapter must change the model"


def test_manifest_names_base_adapter_hashes(tiny_model_dir, tiny_base_model, tmp_path):
    manifest = adapter_manifest(tiny_model_dir)
    adapter = make_adapter(tiny_base_model, tmp_path / "adapter", manifest=manifest)
    (adapter / "reference_profile.json").write_text('{"features": {}}')
    merged = merge_adapter(adapter, tmp_path / "merged")  # base taken from the manifest
    artifact = read_artifact(merged)
    assert artifact["variant"] == "merged" and artifact["gate"]["status"] == "reference"
    assert artifact["name"] == "support-triage"
    assert artifact["source"]["base"] == str(tiny_model_dir)
    assert artifact["source"]["adapter_sha256"] == sha256_file(
        adapter / "adapter_model.safetensors"
    )
    assert artifact["task"]["label_field"] == "category"
    for name, digest in artifact["files"].items():
        assert sha256_file(merged / name) == digest
    assert (merged / "reference_profile.json").is_file()
    assert (merged / "tokenizer.json").is_file() and (merged / "model.safetensors").is_file()


@pytest.fixture
def adapter_dir(tiny_base_model, tmp_path):
    return make_adapter(tiny_base_model, tmp_path / "adapter")


@pytest.mark.parametrize("missing", ["adapter_config.json", "adapter_model.safetensors"])
def test_missing_adapter_file_is_named(adapter_dir, tiny_model_dir, tmp_path, missing):
    (adapter_dir / missing).unlink()
    with pytest.raises(ModelNotFoundError, match=missing):
        merge_adapter(adapter_dir, tmp_path / "out", base=str(tiny_model_dir))


def test_missing_adapter_folder(tiny_model_dir, tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        merge_adapter(tmp_path / "nope", tmp_path / "out", base=str(tiny_model_dir))


def test_corrupted_safetensors_is_a_clear_error(adapter_dir, tiny_model_dir, tmp_path):
    weights = adapter_dir / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ModelLoadError, match="corrupt or truncated") as exc:
        merge_adapter(adapter_dir, tmp_path / "out", base=str(tiny_model_dir))
    assert "adapter_model.safetensors" in str(exc.value)
    assert not (tmp_path / "out").exists()


def test_base_mismatch_from_the_manifest_names_both(tiny_model_dir, tiny_base_model, tmp_path):
    manifest = adapter_manifest(tiny_model_dir, spec="smollm2-135m-instruct", hidden_size=576)
    adapter = make_adapter(tiny_base_model, tmp_path / "adapter", manifest=manifest)
    with pytest.raises(ModelLoadError) as exc:
        merge_adapter(adapter, tmp_path / "out", base=str(tiny_model_dir))
    message = str(exc.value)
    assert "smollm2-135m-instruct" in message and str(tiny_model_dir) in message
    assert "hidden_size 576 vs 64" in message


def test_base_mismatch_of_a_plain_peft_adapter_by_shapes(
    tiny_base_model, smollm2_tokenizer, tmp_path
):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(smollm2_tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    other = LlamaForCausalLM(config)
    other_dir = tmp_path / "other-base"
    other.save_pretrained(other_dir)
    smollm2_tokenizer.save_pretrained(other_dir)
    adapter = make_adapter(tiny_base_model, tmp_path / "adapter")  # trained for hidden 64
    with pytest.raises(ModelLoadError) as exc:
        merge_adapter(adapter, tmp_path / "out", base=str(other_dir))
    message = str(exc.value)
    assert "model.layers.0." in message and "of shape [32, 64]" in message
    assert str(other_dir) in message and "another base" in message


def test_refuses_a_4bit_base_and_says_what_to_do(adapter_dir, tiny_model_dir, tmp_path):
    quantized = copy_folder(tiny_model_dir, tmp_path / "base-nf4")
    config = json.loads((quantized / "config.json").read_text())
    config["quantization_config"] = {
        "quant_method": "bitsandbytes",
        "load_in_4bit": True,
        "bnb_4bit_quant_type": "nf4",
    }
    (quantized / "config.json").write_text(json.dumps(config))
    with pytest.raises(UsageError) as exc:
        merge_adapter(adapter_dir, tmp_path / "out", base=str(quantized))
    assert "4 bits" in str(exc.value) and "unquantized base" in str(exc.value)
    assert "--method int4" in str(exc.value)


def test_existing_output_is_refused_unless_force(adapter_dir, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    argv = ["optimize", "merge", "--adapter", str(adapter_dir), "--out", str(out)]
    argv += ["--base", str(tiny_model_dir)]
    assert cli.main(argv) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    assert cli.main([*argv, "--force"]) == 0
    assert (out / "model.safetensors").is_file() and not (out / "keep.txt").exists()
