"""The ONNX backend and `--model-dir`: an adapter merged, exported with optimum, served by variant.

The optimized folder is built here the way `tuneloop optimize all` lays it out (see
DEVELOPERS.md): one folder per variant with `tuneloop_artifact.json`, and `summary.json`
naming the recommended variant. A variant that failed its gate, and one whose files changed
after the gate ran, must not be served.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import httpx
import pytest
import torch

from serving.test_serve_torch_backend import generate_alone
from tuneloop.serve.backends.onnx_backend import OnnxBackend
from tuneloop.serve.batch_runner import BatchRunner
from tuneloop.serve.jobs import new_job
from tuneloop.serve.lanes import ModelSpec
from tuneloop.serve.requests import GenerationRequest, SamplingParams
from tuneloop.serve.scheduler import Scheduler, SchedulerLimits

NAME = "support-triage"
# The export traces the model; its warnings are about tracing, not about serving.
pytestmark = [
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),
    pytest.mark.filterwarnings("ignore:Exporting aten..index:UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:optimum.*"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.onnx.*"),
]


def artifact(folder, variant, gate):
    files = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.suffix in (".onnx", ".json") and p.name != "tuneloop_artifact.json"
    }
    record = {
        "format": 1,
        "name": NAME,
        "variant": variant,
        "backend": "onnx",
        "precision": variant.removeprefix("onnx-"),
        "gate": {"status": gate, "thresholds": {"kl": 0.05}, "failures": []},
        "source": {"base": "chatty", "adapter": "alpha"},
        "files": files,
    }
    if gate == "failed":
        record["gate"]["failures"] = ["kl 0.31 > 0.05"]
    (folder / "tuneloop_artifact.json").write_text(json.dumps(record))


@pytest.fixture(scope="module")
def merged_dir(chatty_model_dir, adapter_root, tmp_path_factory):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("merged")
    base = AutoModelForCausalLM.from_pretrained(chatty_model_dir)
    merged = PeftModel.from_pretrained(base, adapter_root / "alpha").merge_and_unload()
    merged.save_pretrained(folder, safe_serialization=True)
    AutoTokenizer.from_pretrained(chatty_model_dir).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def optimized_dir(merged_dir, tmp_path_factory):
    from optimum.onnxruntime import ORTModelForCausalLM
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("optimized")
    fp32 = out / "onnx-fp32"
    ORTModelForCausalLM.from_pretrained(merged_dir, export=True).save_pretrained(fp32)
    AutoTokenizer.from_pretrained(merged_dir).save_pretrained(fp32)
    for variant in ("onnx-int8", "onnx-tampered"):
        shutil.copytree(fp32, out / variant)
    artifact(fp32, "onnx-fp32", "passed")
    artifact(out / "onnx-int8", "onnx-int8", "failed")
    artifact(out / "onnx-tampered", "onnx-tampered", "passed")
    with open(out / "onnx-tampered" / "config.json", "a") as f:
        f.write("\n")  # changed after its gate ran
    (out / "summary.json").write_text(json.dumps({"recommended": "onnx-fp32", "variants": []}))
    return out


def test_onnx_batches_give_the_merged_models_greedy_tokens(optimized_dir, merged_dir):
    backend = OnnxBackend.load(ModelSpec("v", "onnx", optimized_dir / "onnx-fp32"))
    tokenizer = backend.tokenizer
    prompts = ["Where is my parcel?", "hi", "My card was charged twice for one order, why?"]
    scheduler = Scheduler("v", BatchRunner(backend), SchedulerLimits(prefill_chunk=4))
    jobs = []
    for i, prompt in enumerate(prompts):
        request = GenerationRequest(
            f"r{i}", "v", tuple(tokenizer.encode(prompt)), SamplingParams(10, 0)
        )
        jobs.append(new_job(request, tokenizer, lambda e: None, lane="v", now=0))
        scheduler.add(jobs[-1])
        scheduler.step()
    while scheduler.has_work():
        scheduler.step()
    for prompt, job in zip(prompts, jobs, strict=True):
        expected = generate_alone(merged_dir, None, tokenizer.encode(prompt), 10)
        assert job.sequences[0].token_ids == expected


@pytest.mark.integration
def test_model_dir_serves_passed_variants_and_refuses_the_rest(serve_process, optimized_dir):
    import openai

    server = serve_process(["--model-dir", str(optimized_dir)])
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    models = {m.id: m for m in client.models.list()}
    assert set(models) == {NAME, f"{NAME}:onnx-fp32"}, "no base model, no refused variant"
    messages = [{"role": "user", "content": "Where is my parcel?"}]
    answers = [
        client.chat.completions.create(model=m, messages=messages, max_tokens=6, temperature=0)
        for m in (NAME, f"{NAME}:onnx-fp32")
    ]
    assert answers[0].choices[0].message.content == answers[1].choices[0].message.content
    log = server.log()
    assert "failed its quality gate" in log and "onnx-int8" in log
    assert "changed since its quality gate ran" in log
    metrics = httpx.get(f"{server.url}/metrics").text
    assert (
        f'tuneloop_model_info{{adapter="none",backend="onnx",base="chatty",model="{NAME}:onnx-fp32"'
        in metrics
    )


def test_onnx_logits_match_torch_on_the_same_weights(optimized_dir, merged_dir):
    from transformers import AutoModelForCausalLM

    from tuneloop.serve.backends.base import ForwardInput

    backend = OnnxBackend.load(ModelSpec("v", "onnx", optimized_dir / "onnx-fp32"))
    model = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    ids = torch.tensor([backend.tokenizer.encode("Refund my order please")])
    mask = torch.ones_like(ids)
    positions = torch.arange(ids.shape[1])[None]
    logits, kv = backend.forward(ForwardInput(ids, mask, positions, None))
    with torch.inference_mode():
        expected = model(input_ids=ids).logits[:, -1]
    assert torch.allclose(logits, expected, atol=1e-3)
    assert len(kv) == model.config.num_hidden_layers and kv[0][0].shape[2] == ids.shape[1]


def test_served_sessions_spin_within_a_run_and_park_after_it(optimized_dir):
    """Between two runs the engine thread samples and the event loop streams, on the same
    cores as onnxruntime's workers: those stop polling when a run returns, but not between
    the operators of a run (parking them there made a decode pass ~15% slower)."""
    backend = OnnxBackend.load(ModelSpec("v", "onnx", optimized_dir / "onnx-fp32"))
    configured = backend.session.get_session_options().get_session_config_entry
    assert configured("session.force_spinning_stop") == "1"
    with pytest.raises(RuntimeError, match="does not have configuration"):
        configured("session.intra_op.allow_spinning")  # unset: onnxruntime's default, spin


def test_only_the_recommended_variant_gets_the_bare_name(optimized_dir):
    from tuneloop.serve.model_dir import servable_variants

    quick = servable_variants(optimized_dir, verify_hashes=False)
    assert [(v.variant, v.recommended) for v in quick] == [
        ("onnx-fp32", True),
        ("onnx-tampered", False),
    ]
    assert [v.variant for v in servable_variants(optimized_dir)] == ["onnx-fp32"]


def test_variant_option_serves_only_the_named_variants(optimized_dir):
    from tuneloop.errors import UsageError
    from tuneloop.serve.loading import model_specs
    from tuneloop.serve.settings import Settings

    def served(**options):
        specs = model_specs(Settings(model_dir=optimized_dir, **options), verify_hashes=False)
        return [(spec.name, spec.aliases) for spec in specs]

    assert served(variant=["recommended"]) == [(f"{NAME}:onnx-fp32", (NAME,))]
    assert served(variant="onnx-fp32,recommended") == [(f"{NAME}:onnx-fp32", (NAME,))]
    with pytest.raises(UsageError, match=r"--variant onnx-int8: not a servable .* onnx-fp32"):
        served(variant=["onnx-int8"])  # it failed its gate
