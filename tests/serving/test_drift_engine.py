"""What the engine hands the drift monitor: per-token log-probabilities of the sampled tokens
and the prompt's mean last hidden state, equal to what the model computes on its own, with
chunked prefill and a batch of mixed adapters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tuneloop.serve.backends.torch_backend import TorchBackend
from tuneloop.serve.batch_runner import BatchRunner
from tuneloop.serve.jobs import new_job
from tuneloop.serve.lanes import ModelSpec
from tuneloop.serve.requests import FinishReason, GenerationRequest, RequestFinished, SamplingParams
from tuneloop.serve.scheduler import Scheduler, SchedulerLimits

PROMPTS = [
    "Where is my parcel? It was due on Monday and the tracking page has not moved.",
    "hi",
    "def fib(n): return n if n < 2 else fib(n - 1) + fib(n - 2)",
]


@pytest.fixture(scope="module")
def backend(chatty_model_dir, adapter_root):
    spec = ModelSpec(
        name="chatty",
        backend="torch",
        path=chatty_model_dir,
        adapters={"alpha": adapter_root / "alpha"},
    )
    return TorchBackend.load(spec)


def run_records(backend, cases, max_tokens, *, pool=True, **limits):
    runner = BatchRunner(backend, pool_prompts=pool)
    scheduler = Scheduler("chatty", runner, SchedulerLimits(**limits))
    records = {}
    for i, (prompt_ids, adapter) in enumerate(cases):
        request = GenerationRequest(
            f"r{i}", "chatty", tuple(prompt_ids), SamplingParams(max_tokens, 0), adapter
        )

        def sink(event, i=i):
            if isinstance(event, RequestFinished):
                records[i] = event.record

        scheduler.add(new_job(request, backend.tokenizer, sink, lane="chatty", now=0))
        scheduler.step()
    while scheduler.has_work():
        scheduler.step()
    return [records[i] for i in range(len(cases))]


def alone(chatty_model_dir, adapter_dir, ids):
    """Last hidden states (after the final norm) and logits of one sequence, nothing batched."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(chatty_model_dir).eval()
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir).eval().get_base_model()
    with torch.inference_mode():
        out = model(input_ids=torch.tensor([ids]), output_hidden_states=False)
        hidden = model.get_decoder()(input_ids=torch.tensor([ids])).last_hidden_state[0]
    return hidden, out.logits[0]


def test_prompt_embedding_and_logprobs_match_the_model_alone(
    backend, chatty_model_dir, adapter_root
):
    tokenizer = backend.tokenizer
    adapters = [None, "alpha", "alpha"]
    cases = [(tokenizer.encode(p), a) for p, a in zip(PROMPTS, adapters, strict=True)]
    records = run_records(backend, cases, max_tokens=6, prefill_chunk=5, max_step_tokens=8)
    for (prompt_ids, adapter), record in zip(cases, records, strict=True):
        folder = adapter_root / adapter if adapter else None
        generated = record.output_ids[0]
        hidden, logits = alone(chatty_model_dir, folder, [*prompt_ids, *generated])
        expected = hidden[: len(prompt_ids)].mean(0).numpy()
        np.testing.assert_allclose(record.prompt_embedding, expected, atol=1e-4, rtol=1e-4)
        logprobs = torch.log_softmax(logits.float(), -1)
        positions = range(len(prompt_ids) - 1, len(prompt_ids) - 1 + len(generated))
        expected_lp = [float(logprobs[p, t]) for p, t in zip(positions, generated, strict=True)]
        assert record.finish_reasons == [FinishReason.LENGTH]
        np.testing.assert_allclose(record.output_logprobs[0], expected_lp, atol=1e-4)


def test_without_pooling_no_embedding_is_computed(backend):
    prompt_ids = backend.tokenizer.encode(PROMPTS[0])
    (record,) = run_records(backend, [(prompt_ids, None)], max_tokens=3, pool=False)
    assert record.prompt_embedding is None
    assert len(record.output_logprobs[0]) == 3
    assert all(lp <= 0 for lp in record.output_logprobs[0])
