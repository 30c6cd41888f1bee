"""A fused (GroupQueryAttention) ONNX variant under continuous batching: the slot KV cache.

The fused graph takes no left padding, so the server drives it through `SlotRunner`: each
sequence in its own left-aligned slot, the running ones packed into slots 0..B-1. Whatever
joins, leaves, is prefilled in chunks or asks for several choices, every sequence must get
the tokens it gets alone, and those must be the merged model's own greedy tokens.
"""

from __future__ import annotations

import pytest

from serving.test_serve_onnx import merged_dir  # noqa: F401  (a module fixture, reused)
from serving.test_serve_torch_backend import PROMPTS, generate_alone
from tuneloop.serve.jobs import new_job
from tuneloop.serve.lanes import ModelSpec
from tuneloop.serve.requests import GenerationRequest, SamplingParams
from tuneloop.serve.scheduler import Scheduler, SchedulerLimits

pytest.importorskip("onnxruntime_genai", reason="the fused graph is in the [fused] extra")


@pytest.fixture(scope="module")
def backend(merged_dir):  # noqa: F811
    from tuneloop.optimize.export import export_onnx
    from tuneloop.serve.backends.onnx_backend import OnnxBackend

    folder = export_onnx(merged_dir, merged_dir.parent / "fused-fp32", fmt="onnx-fused")[0]
    return OnnxBackend.load(ModelSpec("fused", "onnx", folder))


def run(backend, cases, gap_steps=2, runner=None, jobs=None, **limits):
    """Submit (prompt ids, max tokens, choices) cases `gap_steps` apart; every choice's tokens
    of every job in `jobs` (given: earlier jobs stay in it, the new ones come last)."""
    limits = {"max_batch_size": 8, **limits}
    runner = runner or backend.runner(limits["max_batch_size"])
    scheduler = Scheduler("fused", runner, SchedulerLimits(**limits))
    jobs = [] if jobs is None else jobs
    for i, (prompt_ids, max_tokens, n) in enumerate(cases):
        params = SamplingParams(max_tokens, 0, n=n)
        request = GenerationRequest(f"r{i}", "fused", tuple(prompt_ids), params)
        jobs.append(new_job(request, backend.tokenizer, lambda e: None, lane="fused", now=0))
        scheduler.add(jobs[-1])
        for _ in range(gap_steps):
            scheduler.step()
    while scheduler.has_work():
        scheduler.step()
    assert runner.rows == [] and runner._pending == {}, "every slot is given back"
    return [[seq.token_ids for seq in job.sequences] for job in jobs]


def test_the_fused_backend_uses_the_slot_runner(backend):
    from tuneloop.serve.slot_runner import SlotRunner

    assert backend.fused and isinstance(backend.runner(4), SlotRunner)


def test_staggered_batch_of_different_lengths_equals_the_merged_model_alone(
    backend,
    merged_dir,  # noqa: F811
):
    tokenizer = backend.tokenizer
    cases = [(tokenizer.encode(p), 6 + 3 * i, 1) for i, p in enumerate(PROMPTS)]
    batched = run(backend, cases, prefill_chunk=5)
    for (prompt_ids, max_tokens, _), outputs in zip(cases, batched, strict=True):
        assert outputs[0] == generate_alone(merged_dir, None, prompt_ids, max_tokens)


def test_batch_equals_single_with_choices_and_rows_leaving_in_any_order(backend):
    """Rows leave from the middle (short answers first) and jobs join while others prefill."""
    tokenizer = backend.tokenizer
    cases = [
        (tokenizer.encode(PROMPTS[2]), 14, 1),
        (tokenizer.encode(PROMPTS[1]), 3, 2),
        (tokenizer.encode(PROMPTS[0]), 9, 1),
        (tokenizer.encode(PROMPTS[3]), 2, 1),
        (tokenizer.encode(PROMPTS[1] + " again"), 11, 3),
    ]
    together = run(backend, cases, gap_steps=1, prefill_chunk=3, max_step_tokens=8)
    for case, outputs in zip(cases, together, strict=True):
        alone = run(backend, [case])[0]
        assert outputs == alone
        assert len({tuple(o) for o in outputs}) == 1, "greedy choices agree"


def test_batch_wider_than_the_initial_slot_capacity(backend):
    """A prompt past the first capacity makes the slots grow while others are running."""
    from tuneloop.optimize.kv_slots import MIN_CAPACITY

    tokenizer = backend.tokenizer
    long_prompt = tokenizer.encode(" ".join(PROMPTS) * 12)[: MIN_CAPACITY + 40]
    cases = [(tokenizer.encode(PROMPTS[0]), 12, 1), (long_prompt, 8, 1)]
    together = run(backend, cases, gap_steps=3, prefill_chunk=64)
    assert together == [run(backend, [case])[0] for case in cases]


def test_the_server_loads_a_fused_variant_with_the_slot_runner(backend):
    """What `serve --model-dir` does for each variant: a lane whose scheduler drives slots."""
    from tuneloop.serve.loading import load_lane
    from tuneloop.serve.settings import Settings
    from tuneloop.serve.slot_runner import SlotRunner

    spec = ModelSpec("fused", "onnx", backend.info.path)
    lane = load_lane(spec, Settings(max_batch_size=3), not_loaded={})
    runner = lane.scheduler.runner
    assert isinstance(runner, SlotRunner) and runner.max_rows == 3
    # + one spare slot for a partial prompt to step aside into, + the prompt prefix cache
    assert runner.cache.slots == 5


def test_a_full_batch_of_prompts_that_finish_prefilling_together(backend):
    """As many rows as slots, all prefilled in one step: each joining prompt's running slot is
    held by another one's partial prompt, which must step aside (the case 16 users hit)."""
    tokenizer = backend.tokenizer
    cases = [(tokenizer.encode(p), 5, 1) for p in PROMPTS[:3]]
    together = run(backend, cases, gap_steps=0, max_batch_size=3)
    assert together == [run(backend, [case])[0] for case in cases]


def test_prompts_sharing_a_prefix_reuse_its_cache_and_answer_as_alone(backend, merged_dir):  # noqa: F811
    """The second and later prompts copy the shared prefix (a system prompt, an earlier turn)
    from the prefix slot and compute only their own tokens; answers stay the model's own."""
    tokenizer = backend.tokenizer
    system = tokenizer.encode("You are a support triage assistant. Answer in JSON. ")
    cases = [
        (system + tokenizer.encode(PROMPTS[0]), 8, 1),
        (system + tokenizer.encode(PROMPTS[2]), 8, 1),  # shares the system prompt
        (system + tokenizer.encode(PROMPTS[2]), 6, 2),  # the same prompt again
        (tokenizer.encode(PROMPTS[3]), 5, 1),  # shares nothing
    ]
    runner, jobs = backend.runner(8), []
    outputs = run(backend, cases, gap_steps=6, runner=runner, jobs=jobs, prefill_chunk=7)
    for (prompt_ids, max_tokens, _), choices in zip(cases, outputs, strict=True):
        reference = generate_alone(merged_dir, None, prompt_ids, max_tokens)
        assert all(choice == reference for choice in choices)
    cached = [job.record.cached_prompt_tokens for job in jobs]
    assert cached[0] == 0
    assert cached[1] >= len(system)
    assert cached[2] == len(cases[2][0]) - 1, "all but the last token, whose logits are needed"
    assert cached[3] < 2


def test_reset_forgets_the_prefix_cache(backend):
    tokenizer = backend.tokenizer
    case = (tokenizer.encode(PROMPTS[2]), 4, 1)
    runner, jobs = backend.runner(4), []
    first = run(backend, [case, case], runner=runner, jobs=jobs)
    assert jobs[1].record.cached_prompt_tokens == len(case[0]) - 1
    runner.reset()  # what a failed forward pass does: no cache can be trusted
    again = run(backend, [case], runner=runner, jobs=jobs)
    assert jobs[2].record.cached_prompt_tokens == 0 and again[-1] == first[0]


@pytest.mark.integration
def test_the_server_reports_prompt_tokens_served_from_the_prefix_cache(
    backend, serve_process, tmp_path
):
    """Through HTTP: the same chat twice, the second reuses all but one prompt token; usage
    says so (OpenAI's `prompt_tokens_details.cached_tokens`), and so does /metrics."""
    import json
    import shutil

    import httpx

    from serving.test_serve_onnx import NAME, artifact

    folder = tmp_path / "optimized"
    shutil.copytree(backend.info.path, folder / "fused-fp32")
    artifact(folder / "fused-fp32", "fused-fp32", "passed")
    (folder / "summary.json").write_text(json.dumps({"recommended": "fused-fp32"}))
    server = serve_process(["--model-dir", str(folder)])
    body = {
        "model": NAME,
        "messages": [{"role": "user", "content": "Where is my parcel? It was due on Monday."}],
        "max_tokens": 6,
        "temperature": 0,
    }
    url = f"{server.url}/v1/chat/completions"
    first = httpx.post(url, json=body, timeout=60).json()
    second = httpx.post(url, json=body, timeout=60).json()
    assert second["choices"][0]["message"] == first["choices"][0]["message"]
    prompt_tokens = second["usage"]["prompt_tokens"]
    assert first["usage"]["prompt_tokens_details"]["cached_tokens"] < prompt_tokens - 1
    assert second["usage"]["prompt_tokens_details"] == {"cached_tokens": prompt_tokens - 1}

    stream = {**body, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", url, json=stream, timeout=60) as response:
        lines = [line[6:] for line in response.iter_lines() if line.startswith("data: {")]
    usage = json.loads(lines[-1])["usage"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": prompt_tokens - 1}
    metrics = httpx.get(f"{server.url}/metrics").text
    cached = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("tuneloop_cached_prompt_tokens_total{")
    )
    assert cached >= 2 * (prompt_tokens - 1)

    # a chat's later turns reuse the earlier ones (bench/multi_turn.py, as the README runs it)
    from tuneloop.bench.multi_turn import run

    opener = [[{"role": "user", "content": "My parcel is late."}]]
    first, second = run(server.url, NAME, opener, turns=2, max_tokens=4)
    assert second["cached_tokens"] >= first["prompt_tokens"] > 0


def test_a_conversations_next_turn_reuses_the_previous_prompt_and_answer(backend, merged_dir):  # noqa: F811
    """A finished single-choice answer stays in the prefix cache with its prompt: the next
    turn (prompt + answer + a new message) computes only the new message."""
    tokenizer = backend.tokenizer
    runner, jobs = backend.runner(4), []
    first_prompt = tokenizer.encode(PROMPTS[0])
    (answer,) = run(backend, [(first_prompt, 6, 1)], runner=runner, jobs=jobs)[0]
    second_prompt = first_prompt + answer + tokenizer.encode(" Thanks. " + PROMPTS[3])
    (second,) = run(backend, [(second_prompt, 5, 1)], runner=runner, jobs=jobs)[-1]
    assert second == generate_alone(merged_dir, None, second_prompt, 5)
    # every answer token but the last was fed back through the model, so its keys are cached
    assert jobs[1].record.cached_prompt_tokens == len(first_prompt) + len(answer) - 1


def test_the_prefix_cache_can_be_turned_off(backend):
    tokenizer = backend.tokenizer
    case = (tokenizer.encode(PROMPTS[2]), 4, 1)
    runner, jobs = backend.runner(4, prefix_cache=False), []
    outputs = run(backend, [case, case], runner=runner, jobs=jobs)
    assert [job.record.cached_prompt_tokens for job in jobs] == [0, 0]
    assert outputs[0] == outputs[1]
