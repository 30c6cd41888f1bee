"""Synthetic traffic for drift tests: a reference profile of 'support' prompts, and served
requests that look like it (in distribution) or not (other tokens, lengths and embeddings)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from tuneloop.drift_profile import ReferenceSample, build_profile
from tuneloop.serve.requests import FinishReason, RequestRecord

DIM = 16
SUPPORT_TOKENS = np.arange(100, 300)
OTHER_TOKENS = np.arange(5000, 9000)


def support_sample(rng) -> ReferenceSample:
    length = int(rng.normal(40, 6))
    return ReferenceSample(
        prompt_ids=rng.choice(SUPPORT_TOKENS, size=max(length, 5)).tolist(),
        completion_tokens=int(rng.integers(20, 40)),
        completion_logprob=float(rng.normal(-1.0, 0.2)),
        embedding=(np.eye(DIM)[0] + rng.normal(0, 0.3, DIM)).tolist(),
    )


def write_profile(folder: Path, seed: int = 0, n: int = 1000) -> Path:
    rng = np.random.default_rng(seed)
    samples = [support_sample(rng) for _ in range(n)]
    profile = build_profile(
        samples, training_prompts=[s.prompt_ids for s in samples], special_token_ids=[0, 1, 2]
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "reference_profile.json"
    profile.save(path)
    return path


def served(rng, *, drifted: bool, adapter="triage", lane="base", i=0) -> RequestRecord:
    """A finished request: support-like, or (drifted) short prompts of other tokens."""
    if drifted:
        prompt = rng.choice(OTHER_TOKENS, size=int(rng.integers(5, 12))).tolist()
        embedding = -np.eye(DIM)[0] + rng.normal(0, 0.3, DIM)
        logprobs = rng.normal(-3.0, 0.3, int(rng.integers(20, 40))).tolist()
    else:
        sample = support_sample(rng)
        prompt, embedding = sample.prompt_ids, np.asarray(sample.embedding)
        logprobs = rng.normal(sample.completion_logprob, 0.05, sample.completion_tokens).tolist()
    return RequestRecord(
        request_id=f"req-{i}",
        model=adapter or lane,
        adapter=adapter,
        lane=lane,
        arrival=0.0,
        prompt_ids=tuple(prompt),
        completion_tokens=[len(logprobs) - 1],
        finish_reasons=[FinishReason.STOP],
        output_logprobs=[logprobs],
        prompt_embedding=embedding.astype(np.float32),
        texts=["Please write to jane@example.com or call +44 20 7946 0958."],
        messages=({"role": "user", "content": "My card 4111 1111 1111 1111 was charged twice"},),
    )


def fake_lane(adapter_folder: Path | None, *, name="base", model_path=Path("."), pooled=True):
    adapters = {"triage": adapter_folder} if adapter_folder is not None else {}
    backend = SimpleNamespace(
        adapters=list(adapters),
        adapter_folders=adapters,
        info=SimpleNamespace(path=model_path, backend="torch" if pooled else "onnx"),
    )
    runner = SimpleNamespace(pool_prompts=pooled)
    return SimpleNamespace(name=name, backend=backend, scheduler=SimpleNamespace(runner=runner))
