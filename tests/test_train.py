"""`tuneloop train` on a tiny model: loss falls, early stopping, resume after SIGKILL, outputs
that plain PEFT loads with identical logits, and every method."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tuneloop.demo import DEMO_DATA
from tuneloop.drift_profile import ReferenceProfile
from tuneloop.train.callbacks import LossWatchdog, TrainingDivergedError
from tuneloop.train.options import TrainOptions
from tuneloop.train.run import Job, run

FAST = {"profile_examples": 16, "precision": "fp32", "patience": 0, "layers": "all"}


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    lines = DEMO_DATA.read_text(encoding="utf-8").splitlines()[:48]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def train_job(data, out, base, method="lora", **options) -> Job:
    merged = {**FAST, **options}
    return Job(Path(data), Path(out), str(base), method, None, TrainOptions(**merged), "tiny")


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_loss_falls_and_outputs_are_complete(small_data, tiny_model_dir, tmp_path):
    out = tmp_path / "adapter"
    result = run(train_job(small_data, out, tiny_model_dir, lr=3e-2, max_steps=12, eval_every=4))
    evals = [m["eval_loss"] for m in metrics(out) if "eval_loss" in m]
    assert len(evals) == 3 and evals[-1] < evals[0] - 0.1  # at steps 4, 8 and 12
    assert result.summary["steps"] == 12
    for name in (
        "adapter_config.json",
        "adapter_model.safetensors",
        "tuneloop_adapter.json",
        "reference_profile.json",
        "training_config.json",
        "metrics.jsonl",
        "report.md",
        "loss.png",
        "README.md",
    ):
        assert (out / name).is_file(), name
    assert list((out / "tensorboard").glob("events.out.tfevents*"))
    assert not (out / "checkpoints").exists()  # the kept weights are in the adapter files
    manifest = json.loads((out / "tuneloop_adapter.json").read_text())
    assert manifest["task"]["label_field"] == "category"
    assert manifest["base"]["sizes"]["hidden_size"] == 64
    config = json.loads((out / "training_config.json").read_text())
    assert config["status"] == "complete"
    assert "OpenAI" in config["resolved"]["choices"]["epochs"]["reason"]
    profile = ReferenceProfile.load(out / "reference_profile.json")
    assert profile.n_examples == 16 and len(profile.centroid) == 64
    assert set(profile.features) >= {"prompt_tokens", "completion_logprob", "rare_token_share"}


def test_plain_peft_loads_the_adapter_with_identical_logits(small_data, tiny_model_dir, tmp_path):
    from peft import PeftModel

    from tuneloop.base_model import load_model

    out = tmp_path / "adapter"
    result = run(train_job(small_data, out, tiny_model_dir, lr=5e-3, max_steps=5, eval_every=2))
    # the last step is evaluated too (not only 2 and 4), so it can be the kept one
    assert [m["step"] for m in metrics(out) if "eval_loss" in m] == [2, 4, 5]
    assert result.summary["best_step"] == 5
    ids = torch.tensor([[1, 520, 3000, 44, 9, 2, 198, 1, 4093]])
    trained = result.model.eval()
    loaded = PeftModel.from_pretrained(load_model(str(tiny_model_dir)), out).eval()
    with torch.no_grad():
        expected, actual = trained(input_ids=ids).logits, loaded(input_ids=ids).logits
        base = load_model(str(tiny_model_dir))(input_ids=ids).logits
    assert torch.allclose(expected, actual, atol=1e-6)
    assert not torch.allclose(base, actual, atol=1e-4)  # the adapter changes something


def test_early_stopping_keeps_the_best_checkpoint(small_data, tiny_model_dir, tmp_path):
    out = tmp_path / "adapter"
    options = {"lr": 1e-9, "max_steps": 30, "eval_every": 1, "patience": 2, "min_improvement": 0.01}
    result = run(train_job(small_data, out, tiny_model_dir, **options))
    assert result.summary["steps"] == 3  # first evaluation, then two without improvement
    assert result.summary["stop_reason"].startswith("early stopping")
    assert result.summary["best_step"] == 1


def test_watchdog_aborts_on_nan_and_on_sustained_divergence():
    watchdog = LossWatchdog(factor=3.0, patience=2)
    with pytest.raises(TrainingDivergedError, match="nan"):
        watchdog._check("loss", float("nan"), 5)
    watchdog = LossWatchdog(factor=3.0, patience=2)
    watchdog._check("eval_loss", 2.0, 1)
    watchdog._check("eval_loss", 7.0, 2)  # one strike
    watchdog._check("eval_loss", 2.5, 3)  # recovered: strikes reset
    watchdog._check("eval_loss", 7.0, 4)
    with pytest.raises(TrainingDivergedError, match="validation loss 8.000 at step 5"):
        watchdog._check("eval_loss", 8.0, 5)


def tuneloop(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tuneloop", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
        timeout=600,
    )


def test_resume_after_sigkill_reaches_the_same_final_step(small_data, tiny_model_dir, tmp_path):
    out = tmp_path / "adapter"
    args = ["train", "--data", str(small_data), "--out", str(out), "--base", str(tiny_model_dir)]
    args += ["--max-steps", "8", "--eval-every", "2", "--profile-examples", "8", "--patience", "0"]
    killed = tuneloop(*args, env={"TUNELOOP_TEST_KILL_AFTER_STEPS": "5"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    steps_before = [m["step"] for m in metrics(out)]
    assert max(steps_before) == 4  # logs up to the last evaluation before the kill
    resumed = tuneloop("train", "--resume", str(out))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from" in resumed.stderr and "checkpoint-4" in resumed.stderr
    config = json.loads((out / "training_config.json").read_text())
    assert config["summary"]["steps"] == 8
    resumed_steps = [m["step"] for m in metrics(out)][len(steps_before) :]
    assert min(resumed_steps) > 4  # continued, not restarted from step 0


@pytest.mark.parametrize("method", ["dora", "rslora", "prompt-tuning", "full"])
def test_every_method_trains_and_saves(small_data, tiny_model_dir, tmp_path, method):
    out = tmp_path / method
    result = run(train_job(small_data, out, tiny_model_dir, method, max_steps=2, eval_every=2))
    assert result.summary["steps"] == 2
    weights = "model.safetensors" if method == "full" else "adapter_model.safetensors"
    assert (out / weights).is_file()
    assert json.loads((out / "tuneloop_adapter.json").read_text())["method"] == method


def test_qlora_trains_on_this_device_or_says_why(small_data, tiny_model_dir, tmp_path):
    pytest.importorskip("bitsandbytes", reason="qlora needs bitsandbytes (the [gpu] extra)")
    out = tmp_path / "qlora"
    result = run(train_job(small_data, out, tiny_model_dir, "qlora", max_steps=2, eval_every=2))
    assert result.summary["steps"] == 2 and (out / "adapter_model.safetensors").is_file()


def test_bad_options_fail_before_any_model_loads(capsys):
    from tuneloop import cli

    code = cli.main(["train", "--data", "x.jsonl", "--out", "o", "--lora-r", "0"])
    assert code == 2 and "--lora-r must be positive" in capsys.readouterr().err
    code = cli.main(["train", "--out", "o"])
    assert code == 2 and "--data" in capsys.readouterr().err
