"""The torch backend under continuous batching gives what transformers' generate gives alone."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from tuneloop.serve.backends.torch_backend import TorchBackend
from tuneloop.serve.batch_runner import BatchRunner
from tuneloop.serve.errors import AdapterRefused
from tuneloop.serve.jobs import new_job
from tuneloop.serve.lanes import ModelSpec
from tuneloop.serve.requests import GenerationRequest, SamplingParams
from tuneloop.serve.scheduler import Scheduler, SchedulerLimits

PROMPTS = [
    "Where is my parcel? It was due on Monday.",
    "hi",
    "I was charged twice for order 1234 and nobody answers my emails, this is the third time",
    "Reset my password please",
]


@pytest.fixture(scope="module")
def backend(chatty_model_dir, adapter_root):
    spec = ModelSpec(
        name="chatty",
        backend="torch",
        path=chatty_model_dir,
        adapters={"alpha": adapter_root / "alpha", "beta": adapter_root / "beta"},
    )
    return TorchBackend.load(spec)


def generate_alone(model_dir, adapter_dir, prompt_ids, max_new_tokens):
    """The reference: transformers' own greedy generate, one request, nothing batched."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir).eval()
    with torch.inference_mode():
        out = model.generate(
            input_ids=torch.tensor([prompt_ids]),
            attention_mask=torch.ones((1, len(prompt_ids)), dtype=torch.long),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=2,
            pad_token_id=0,
        )
    tokens = out[0, len(prompt_ids) :].tolist()
    return tokens[: tokens.index(2)] if 2 in tokens else tokens


def run_batched(backend, cases, max_tokens, **limits):
    """Submit the cases two steps apart into one scheduler; return each one's tokens."""
    scheduler = Scheduler("chatty", BatchRunner(backend), SchedulerLimits(**limits))
    jobs = []
    for i, (prompt_ids, adapter) in enumerate(cases):
        request = GenerationRequest(
            f"r{i}", "chatty", tuple(prompt_ids), SamplingParams(max_tokens, 0), adapter
        )
        jobs.append(new_job(request, backend.tokenizer, lambda e: None, lane="chatty", now=0))
        scheduler.add(jobs[-1])
        scheduler.step()
        scheduler.step()
    while scheduler.has_work():
        scheduler.step()
    return [job.sequences[0].token_ids for job in jobs]


def test_mixed_adapter_batch_equals_each_adapter_alone(backend, chatty_model_dir, adapter_root):
    tokenizer = backend.tokenizer
    adapters = [None, "alpha", "beta", "alpha"]
    cases = [(tokenizer.encode(p), a) for p, a in zip(PROMPTS, adapters, strict=True)]
    batched = run_batched(backend, cases, max_tokens=12, prefill_chunk=8)
    for (prompt_ids, adapter), tokens in zip(cases, batched, strict=True):
        folder = adapter_root / adapter if adapter else None
        assert tokens == generate_alone(chatty_model_dir, folder, prompt_ids, 12), adapter


def test_adapters_change_the_output(backend):
    prompt_ids = backend.tokenizer.encode(PROMPTS[0])
    outputs = run_batched(backend, [(prompt_ids, a) for a in (None, "alpha", "beta")], 8)
    assert len({tuple(o) for o in outputs}) == 3


def test_adapter_for_another_base_is_refused(backend, adapter_root, tmp_path):
    folder = tmp_path / "wrong"
    shutil.copytree(adapter_root / "alpha", folder)
    manifest = json.loads((folder / "tuneloop_adapter.json").read_text())
    manifest["base"]["hidden_size"] = 576
    (folder / "tuneloop_adapter.json").write_text(json.dumps(manifest))
    with pytest.raises(AdapterRefused, match="hidden_size=576.*hidden_size=64"):
        backend.load_adapter("wrong", folder)
    assert "wrong" not in backend.adapters


def test_adapter_whose_shapes_do_not_fit_is_refused(backend, adapter_root, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "misfit"
    shutil.copytree(adapter_root / "beta", folder)
    (folder / "tuneloop_adapter.json").unlink()
    weights = load_file(folder / "adapter_model.safetensors")
    save_file(
        {k: torch.zeros(v.shape[0] * 2, *v.shape[1:]) for k, v in weights.items()},
        folder / "adapter_model.safetensors",
    )
    with pytest.raises(AdapterRefused, match="does not fit base"):
        backend.load_adapter("misfit", folder)
    assert backend.adapters == ["alpha", "beta"]


def test_pickle_only_adapter_is_refused(backend, adapter_root, tmp_path):
    folder = tmp_path / "pickled"
    shutil.copytree(adapter_root / "alpha", folder)
    (folder / "adapter_model.safetensors").rename(folder / "adapter_model.bin")
    with pytest.raises(AdapterRefused, match="adapter_model.bin: pickle files are never loaded"):
        backend.load_adapter("pickled", folder)


def test_load_and_unload_at_runtime(chatty_model_dir, adapter_root):
    backend = TorchBackend.load(ModelSpec("chatty", "torch", chatty_model_dir))
    prompt_ids = backend.tokenizer.encode(PROMPTS[1])
    plain = run_batched(backend, [(prompt_ids, None)], 6)
    backend.load_adapter("beta", adapter_root / "beta")
    assert backend.adapters == ["beta"]
    assert run_batched(backend, [(prompt_ids, None)], 6) == plain
    backend.unload_adapter("beta")
    assert backend.adapters == []
    assert run_batched(backend, [(prompt_ids, None)], 6) == plain


def test_switching_between_base_single_and_mixed_batches_keeps_outputs(
    backend, chatty_model_dir, adapter_root
):
    """The backend keeps PEFT's adapter state between steps; every switch must be exact."""
    prompt_ids = backend.tokenizer.encode(PROMPTS[3])
    expected = {
        adapter: generate_alone(
            chatty_model_dir, adapter_root / adapter if adapter else None, prompt_ids, 5
        )
        for adapter in (None, "alpha", "beta")
    }
    sequence = [[None], ["alpha"], [None], ["beta"], ["alpha", None], ["beta"], [None, None]]
    for adapters in sequence:
        outputs = run_batched(backend, [(prompt_ids, a) for a in adapters], max_tokens=5)
        assert outputs == [expected[a] for a in adapters], adapters
