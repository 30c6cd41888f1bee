"""The same `tuneloop train` command under torchrun: two CPU processes (gloo) agree."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tuneloop.demo import DEMO_DATA
from tuneloop.ports import free_port


@pytest.mark.integration
def test_two_processes_train_the_same_weights(tiny_model_dir, tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(DEMO_DATA.read_text().splitlines()[:48]) + "\n")
    out = tmp_path / "adapter"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
        "-m", "tuneloop", "train", "--data", str(data), "--out", str(out),
        "--base", str(tiny_model_dir), "--max-steps", "4", "--eval-every", "2",
        "--profile-examples", "8", "--precision", "fp32",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads(p.read_text()) for p in sorted((out / "ranks").glob("rank-*.json"))]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert ranks[0]["steps"] == ranks[1]["steps"] == 4
    assert ranks[0]["trainable_sha256"] == ranks[1]["trainable_sha256"]
    config = json.loads((out / "training_config.json").read_text())
    assert config["resolved"]["world_size"] == 2 and config["status"] == "complete"
    # the loss is per answer token whatever the number of processes (about ln(vocab) here)
    losses = [
        json.loads(line)["loss"]
        for line in (out / "metrics.jsonl").read_text().splitlines()
        if '"loss"' in line
    ]
    assert 9.5 < losses[0] < 11.5
    assert (out / "adapter_model.safetensors").is_file()
