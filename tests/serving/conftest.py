"""Fixtures of the serving tests: a tiny model that talks, LoRA adapters on it, a real server.

The tiny Llama of the top-level conftest is initialised so gently that greedy decoding
repeats one token for ever, which would hide batching bugs; here the weights are scaled up
(initializer_range 0.3) so every prompt gets a varied continuation.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.serve_helpers import (
    ServerProcess,
    build_chatty_llama,
    make_lora_adapter,
    start_server,
    tuneloop_manifest,
)


@pytest.fixture(scope="session")
def chatty_model_dir(tmp_path_factory, smollm2_tokenizer) -> Path:
    folder = tmp_path_factory.mktemp("chatty-llama")
    model = build_chatty_llama(smollm2_tokenizer)
    model.save_pretrained(folder, safe_serialization=True)
    smollm2_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def adapter_root(tmp_path_factory, chatty_model_dir) -> Path:
    """A folder with two LoRA adapters for the chatty model: `alpha/` and `beta/`."""
    root = tmp_path_factory.mktemp("adapters")
    for seed, name in enumerate(["alpha", "beta"], start=1):
        folder = root / name
        folder.mkdir()
        make_lora_adapter(
            chatty_model_dir, folder, seed, manifest=tuneloop_manifest(chatty_model_dir, name)
        )
    return root


@pytest.fixture
def serve_process(tmp_path):
    """Factory: `serve_process(args, env)` starts a server; every one is stopped afterwards."""
    started: list[ServerProcess] = []

    def start(args: list[str], env: dict | None = None) -> ServerProcess:
        server = start_server(args, tmp_path, env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
