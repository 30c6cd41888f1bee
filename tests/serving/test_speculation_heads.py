"""Draft heads in a fused graph: the logits stay bit-identical, the heads guess after the token
the model chose, and drafting their guesses (in process and in the server, with no draft
table) leaves the answers as decoding token by token gives them (the tiny model is fp32).

The heads are trained on the tiny model's own greedy answers to the test prompts, long enough
to learn them by heart, so their guesses are mostly right: the tests can see them kept.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from serving.test_serve_onnx import merged_dir  # noqa: F401  (a module fixture, reused)
from serving.test_serve_torch_backend import PROMPTS
from serving.test_speculation import answer
from tuneloop.optimize.draft_heads import build_heads, write_heads
from tuneloop.optimize.draft_heads_graph import DRAFT_IDS, PREFIX
from tuneloop.optimize.ngram_draft import NgramDraft
from tuneloop.serve.requests import SamplingParams

pytest.importorskip("onnxruntime_genai", reason="the fused graph is in the [fused] extra")
pytestmark = [
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]
NEW_TOKENS = 24


@pytest.fixture(scope="module")
def plain_variant(merged_dir, tmp_path_factory):  # noqa: F811
    """The fused fp32 export of the tiny merged model, and the token ids of its answers."""
    from tuneloop.optimize.export import export_onnx
    from tuneloop.optimize.runtime import folder_tokenizer, load_causal_lm

    out = tmp_path_factory.mktemp("heads") / "fused-fp32"
    folder = export_onnx(merged_dir, out, fmt="onnx-fused")[0]
    tokenizer = folder_tokenizer(folder)
    model = load_causal_lm(folder, threads=1)
    prompts = [list(tokenizer.encode(p)) for p in PROMPTS]
    answers = [model.generate([p], NEW_TOKENS, stop_at_eos=False).tokens[0] for p in prompts]
    return folder, prompts, answers


@pytest.fixture(scope="module")
def heads_variant(plain_variant, tmp_path_factory):
    """The same variant with heads that learned its answers."""
    source, prompts, answers = plain_variant
    folder = tmp_path_factory.mktemp("with-heads") / "fused-fp32"
    shutil.copytree(source, folder)
    texts = [p + a for p, a in zip(prompts, answers, strict=True)] * 3
    write_heads(folder, build_heads(folder, texts, size=64, epochs=60))
    return folder


def test_heads_add_two_outputs_and_leave_the_logits_bit_identical(plain_variant, heads_variant):
    from tuneloop.optimize.runtime import load_causal_lm

    source, prompts, answers = plain_variant
    ids = prompts[2] + answers[2]
    before = load_causal_lm(source, threads=1).sequence_logits(ids)
    model = load_causal_lm(heads_variant, threads=1)
    assert np.array_equal(model.sequence_logits(ids), before)
    guessed_ids, probs = model.slots(1).guesses
    assert guessed_ids.shape == (1, len(ids), 3) and probs.shape == (1, len(ids), 2)
    assert (guessed_ids[0, :, 0] == before.argmax(-1)).all(), "guesses follow the chosen token"
    assert ((probs >= 0) & (probs <= 1)).all()


def test_the_runtime_drafts_the_heads_guesses_without_a_table(plain_variant, heads_variant):
    from tuneloop.optimize.runtime import load_causal_lm

    _, prompts, answers = plain_variant
    model = load_causal_lm(heads_variant, threads=1)
    assert model.draft is not None and model.draft.table == {}, "heads alone speculate"
    for prompt, expected in zip(prompts, answers, strict=True):
        drafted = model.generate([prompt], NEW_TOKENS, stop_at_eos=False)
        assert drafted.tokens[0] == expected
        assert drafted.accepted > 0 and drafted.decode_steps < NEW_TOKENS - 1


def test_the_server_drafts_the_heads_guesses_and_answers_the_same(plain_variant, heads_variant):
    from tuneloop.serve.backends.onnx_backend import OnnxBackend
    from tuneloop.serve.lanes import ModelSpec

    _, prompts, _ = plain_variant
    backend = OnnxBackend.load(ModelSpec("fused", "onnx", heads_variant))
    drafts = backend.runner(4).drafts
    assert drafts is not None and drafts.table == {}
    assert backend.runner(4, speculate=False).drafts is None
    accepted = 0
    for params in (SamplingParams(NEW_TOKENS, 0), SamplingParams(NEW_TOKENS, 0.7, seed=5)):
        for prompt in prompts:
            plain, _ = answer(backend, prompt, params)
            tokens, record = answer(backend, prompt, params, drafts=NgramDraft())
            assert tokens == plain
            accepted += record.accepted_draft_tokens
    assert accepted > len(prompts), "the heads' guesses are kept"


def test_drafting_again_replaces_the_heads_and_records_the_files(plain_variant, tmp_path):
    """`optimize draft` end to end on a variant with a manifest: table and heads, twice."""
    from tuneloop.optimize.artifacts import sha256_file
    from tuneloop.optimize.ngram_draft import DraftOptions, add_drafts

    folder = tmp_path / "fused-fp32"
    shutil.copytree(plain_variant[0], folder)
    model_file = folder / "model.onnx"
    manifest = {"files": {"model.onnx": sha256_file(model_file)}}
    (folder / "tuneloop_artifact.json").write_text(json.dumps(manifest))
    data = tmp_path / "train.jsonl"
    rows = [
        {"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": "ok"}]}
        for p in PROMPTS
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows))
    options = DraftOptions(model_answers=2, head_size=16, head_epochs=2)
    for _ in range(2):
        add_drafts([folder], data, options)
    import onnx

    graph = onnx.load(str(model_file)).graph
    assert sum(n.name.startswith(PREFIX) for n in graph.node) == len(
        {n.name for n in graph.node if n.name.startswith(PREFIX)}
    )
    assert [o.name for o in graph.output].count(DRAFT_IDS) == 1
    assert sum(n.op_type == "MatMulNBits" for n in graph.node if n.name.startswith(PREFIX)) == 4
    manifest = json.loads((folder / "tuneloop_artifact.json").read_text())
    assert manifest["files"]["model.onnx"] == sha256_file(model_file)
    assert manifest["draft_heads"]["size"] == 16 and manifest["draft"]["answered_prompts"] == 2
    assert not list(folder.glob(".edit-*")), "no scratch folder is left behind"
