"""Speculative decoding on a fused variant: drafted tokens are checked in one pass, and kept
only while the model chooses them too, so answers are the ones decoding token by token gives
(the tiny model is fp32: no rounding difference between one- and many-token passes).

A table built from the model's own answers drafts mostly right; a table of wrong guesses
drafts only wrong. Both must leave the answers, greedy and seeded sampled, unchanged.
"""

from __future__ import annotations

import pytest

from serving.test_serve_onnx import merged_dir  # noqa: F401  (a module fixture, reused)
from serving.test_serve_torch_backend import PROMPTS
from tuneloop.optimize.ngram_draft import DraftOptions, NgramDraft
from tuneloop.serve.jobs import new_job
from tuneloop.serve.requests import GenerationRequest, SamplingParams, TextDelta
from tuneloop.serve.scheduler import Scheduler, SchedulerLimits
from tuneloop.serve.slot_runner import SlotRunner

pytest.importorskip("onnxruntime_genai", reason="the fused graph is in the [fused] extra")

EVERY_CONTEXT = DraftOptions(order=3, min_count=1, min_share=0.0)
EVERY_ANSWERED = DraftOptions(order=3, min_count=1, min_share=0.0, model_answers=1)
"""Every context of the model's own answer to one training prompt."""


@pytest.fixture(scope="module")
def backend(merged_dir, tmp_path_factory):  # noqa: F811
    """The fused fp32 export of the tiny merged model, in a folder of this module's own (the
    table test writes a draft table into it)."""
    from tuneloop.optimize.export import export_onnx
    from tuneloop.serve.backends.onnx_backend import OnnxBackend
    from tuneloop.serve.lanes import ModelSpec

    out = tmp_path_factory.mktemp("speculation") / "fused-fp32"
    folder = export_onnx(merged_dir, out, fmt="onnx-fused")[0]
    return OnnxBackend.load(ModelSpec("fused", "onnx", folder))


def answer(backend, prompt, params, drafts=None, alongside=None, sink=lambda event: None):
    """One job's tokens and record (with `alongside` prompts running in the same batch);
    the first job's events go to `sink`."""
    runner = SlotRunner(backend, 4, drafts=drafts)
    scheduler = Scheduler("fused", runner, SchedulerLimits(max_batch_size=4))
    jobs = []
    for i, ids in enumerate([prompt, *(alongside or [])]):
        request = GenerationRequest(f"r{i}", "fused", tuple(ids), params)
        events = sink if i == 0 else lambda event: None
        jobs.append(new_job(request, backend.tokenizer, events, lane="fused", now=0))
        scheduler.add(jobs[-1])
    while scheduler.has_work():
        scheduler.step()
    assert runner.rows == [] and runner._pending == {}, "every slot is given back"
    return jobs[0].sequences[0].token_ids, jobs[0].record


def tables(backend, prompts, params):  # noqa: F811
    """A table of the model's own answers, and one whose every guess is another token."""
    answers = [answer(backend, p, params)[0] for p in prompts]
    right = NgramDraft.build(
        [(list(p) + a, len(p)) for p, a in zip(prompts, answers, strict=True)], EVERY_CONTEXT
    )
    wrong = NgramDraft({k: (v + 1) % 50 for k, v in right.table.items()}, right.order)
    return answers, right, wrong


def test_greedy_answers_are_unchanged_by_right_and_wrong_drafts(backend):  # noqa: F811
    prompts = [backend.tokenizer.encode(p) for p in PROMPTS]
    greedy = SamplingParams(24, 0)
    answers, right, wrong = tables(backend, prompts, greedy)
    accepted = 0
    for prompt, expected in zip(prompts, answers, strict=True):
        tokens, record = answer(backend, prompt, greedy, drafts=right)
        assert tokens == expected
        assert record.accepted_draft_tokens <= record.drafted_tokens
        accepted += record.accepted_draft_tokens
        tokens, record = answer(backend, prompt, greedy, drafts=wrong)
        assert tokens == expected
        assert record.accepted_draft_tokens == 0
    assert accepted > len(prompts), "a table of the model's own answers drafts them"


def test_a_pass_that_keeps_drafted_tokens_sends_their_text_as_one_delta(backend):  # noqa: F811
    """One chunk per pass, not per token: a stream's cost is per chunk."""
    prompt = backend.tokenizer.encode(PROMPTS[0])
    greedy = SamplingParams(24, 0)
    _, right, _ = tables(backend, [prompt], greedy)
    plain, drafted = [], []
    answer(backend, prompt, greedy, sink=plain.append)
    _, record = answer(backend, prompt, greedy, drafts=right, sink=drafted.append)
    plain, drafted = (
        [e for e in events if isinstance(e, TextDelta)] for events in (plain, drafted)
    )
    assert "".join(d.text for d in drafted) == "".join(d.text for d in plain)
    assert record.accepted_draft_tokens > 0
    assert len(drafted) <= len(plain) - record.accepted_draft_tokens
    assert drafted[-1].tokens == plain[-1].tokens


def test_seeded_sampling_gives_the_same_tokens_with_drafts(backend):  # noqa: F811
    prompts = [backend.tokenizer.encode(p) for p in PROMPTS[:2]]
    sampled = SamplingParams(20, 0.7, seed=11)
    answers, right, _ = tables(backend, prompts, sampled)
    for prompt, expected in zip(prompts, answers, strict=True):
        assert answer(backend, prompt, sampled, drafts=right)[0] == expected


def test_drafts_stay_within_max_tokens_and_only_when_the_sequence_runs_alone(backend):  # noqa: F811
    prompts = [backend.tokenizer.encode(p) for p in PROMPTS]
    answers, right, _ = tables(backend, prompts, SamplingParams(24, 0))
    tokens, record = answer(backend, prompts[0], SamplingParams(5, 0), drafts=right)
    assert tokens == answers[0][:5] and record.drafted_tokens > 0
    _, record = answer(backend, prompts[0], SamplingParams(24, 0), right, alongside=prompts[1:3])
    # Speculation starts only once the other two have finished (they are as long).
    assert record.drafted_tokens < len(answers[0])


def test_the_in_process_runtime_decodes_the_same_with_its_draft_table(backend, tmp_path):  # noqa: F811
    from tuneloop.optimize.runtime import load_causal_lm

    model = load_causal_lm(backend.info.path, threads=1)
    prompts = [backend.tokenizer.encode(p) for p in PROMPTS]
    plain = [model.generate([p], 24, stop_at_eos=False) for p in prompts]
    model.draft = NgramDraft.build(
        [(p + g.tokens[0], len(p)) for p, g in zip(prompts, plain, strict=True)], EVERY_CONTEXT
    )
    for prompt, expected in zip(prompts, plain, strict=True):
        drafted = model.generate([prompt], 24, stop_at_eos=False)
        assert drafted.tokens == expected.tokens
        assert drafted.accepted > 0 and drafted.decode_steps < expected.decode_steps
        assert drafted.decode_tokens == 23  # every token after the first, fewer passes
    model.speculate = False
    assert model.generate([prompts[0]], 24, stop_at_eos=False).drafted == 0


def test_the_server_takes_the_variants_draft_table_unless_told_not_to(backend):  # noqa: F811
    from tuneloop.optimize.ngram_draft import add_draft

    path = add_draft(backend.info.path, NgramDraft({(1,): 2}, order=1))
    try:
        assert backend.runner(4).drafts.table == {(1,): 2}
        assert backend.runner(4, speculate=False).drafts is None
    finally:
        path.unlink()
    assert backend.runner(4).drafts is None


def test_a_table_of_the_models_own_answers_drafts_them(backend, tmp_path):  # noqa: F811
    import json

    from tuneloop.optimize.ngram_draft import draft_from_data
    from tuneloop.optimize.runtime import load_causal_lm

    model = load_causal_lm(backend.info.path, threads=1)
    data = tmp_path / "train.jsonl"
    rows = [
        {"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": "ok"}]}
        for p in PROMPTS
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows))
    table = draft_from_data(backend.tokenizer, data, EVERY_ANSWERED, model)
    assert table.source["answers"] == "model (fused-fp32)" and table.source["answered_prompts"] == 1

    # The table is the one of the model's own greedy answer to the first prompt (a short
    # training answer still leaves the model 16 tokens), answered with drafts or without.
    model.draft, model.speculate = None, False
    messages = [{"role": "user", "content": PROMPTS[0]}]
    prompt = list(backend.tokenizer.apply_chat_template(messages, add_generation_prompt=True))
    said = model.generate([prompt], 16).tokens[0]
    assert len(said) > 3, "the tiny model says more than its end token"
    assert table.table == NgramDraft.build([(prompt + said, len(prompt))], EVERY_ANSWERED).table
    data_only = draft_from_data(backend.tokenizer, data, DraftOptions(model_answers=0), model)
    assert data_only.source["answers"] == "data"
