"""The torch backend on a GPU in bf16 (skipped where torch sees no CUDA device)."""

from __future__ import annotations

import pytest
import torch

from serving.test_serve_torch_backend import PROMPTS, run_batched
from tuneloop.serve.backends.torch_backend import TorchBackend
from tuneloop.serve.lanes import ModelSpec

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_bf16_mixed_adapter_batch_matches_each_request_alone(chatty_model_dir, adapter_root):
    spec = ModelSpec(
        "chatty",
        "torch",
        chatty_model_dir,
        adapters={"alpha": adapter_root / "alpha", "beta": adapter_root / "beta"},
        device="cuda",
    )
    backend = TorchBackend.load(spec)
    assert backend.info.precision in ("bfloat16", "float16")
    cases = [
        (backend.tokenizer.encode(p), a)
        for p, a in zip(PROMPTS, [None, "alpha", "beta", "alpha"], strict=True)
    ]
    together = run_batched(backend, cases, max_tokens=8)
    alone = [run_batched(backend, [case], max_tokens=8)[0] for case in cases]
    assert together == alone
