"""Helpers of the serving tests: a tiny model that talks, LoRA adapters, a real server process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tuneloop.ports import free_port

READY_TIMEOUT_S = 120


def build_chatty_llama(tokenizer, seed: int = 0):
    """A 2-layer random Llama for `tokenizer` whose greedy output varies from token to token.

    Its end token's logit is pinned to 0 while the others spread widely, so greedy decoding
    never ends early: tests choose the length with max_tokens.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        initializer_range=0.3,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # never choose the end token, so long generations run their length
        model.lm_head.weight[tokenizer.eos_token_id] = 0
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def make_lora_adapter(base_dir: Path, out: Path, seed: int, *, manifest: dict | None = None):
    """A LoRA adapter with random (non-zero) A and B, so it really changes the outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(
        r=4,
        lora_alpha=16,
        target_modules=["q_proj", "v_proj", "o_proj", "down_proj"],
        init_lora_weights=False,
    )
    model = get_peft_model(base, config)
    model.save_pretrained(out, safe_serialization=True)
    if manifest is not None:
        (out / "tuneloop_adapter.json").write_text(json.dumps(manifest), encoding="utf-8")
    return out


def tuneloop_manifest(base_dir: Path, name: str) -> dict:
    config = json.loads((base_dir / "config.json").read_text())
    keys = ("model_type", "hidden_size", "num_hidden_layers", "vocab_size")
    return {
        "format": 1,
        "name": name,
        "method": "lora",
        "base": {"spec": str(base_dir), "architecture": config["architectures"][0]}
        | {k: config[k] for k in keys},
    }


@dataclass
class ServerProcess:
    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_server(
    args: list[str],
    tmp_path: Path,
    env: dict | None = None,
    tuneloop: list[str] | None = None,
) -> ServerProcess:
    """Start `tuneloop serve ARGS` on a free loopback port and wait until /ready says yes.

    `tuneloop` is the command that runs the CLI (default: this interpreter's `-m tuneloop`);
    the packaging tests pass the console script of a fresh virtual environment.
    """
    port = free_port()
    log_path = tmp_path / f"server-{port}.log"
    full_env = {**os.environ, "TUNELOOP_LOG_FORMAT": "json", **(env or {})}
    launcher = tuneloop or [sys.executable, "-m", "tuneloop"]
    command = [*launcher, "serve", "--port", str(port), *args]
    if "--threads" not in args:
        command += ["--threads", "1"]  # the test machine's cores are shared with other work
    return _launch(command, port, log_path, full_env)


def start_fake_server(tmp_path: Path, step_delay_s: float, env: dict | None = None):
    """The real server over the fake model (`fake_server.py`), as a process; settings from
    `env` (TUNELOOP_* variables)."""
    port = free_port()
    log_path = tmp_path / f"fake-server-{port}.log"
    tests = Path(__file__).resolve().parents[1]
    full_env = {**os.environ, "PYTHONPATH": str(tests), **(env or {})}
    script = Path(__file__).with_name("fake_server.py")
    command = [sys.executable, str(script), str(port), str(step_delay_s)]
    return _launch(command, port, log_path, full_env)


def _launch(command: list[str], port: int, log_path: Path, env: dict) -> ServerProcess:
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    server = ServerProcess(process, port, log_path)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/ready", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise AssertionError(f"server not ready after {READY_TIMEOUT_S} s:\n{server.log()}")


def wait_for(condition, timeout: float = 30, what: str = "condition") -> None:
    """Poll `condition` until it holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
