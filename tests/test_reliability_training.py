"""A full disk while a checkpoint is written: a clear error, the last complete checkpoint
intact, and `--resume` finishes the run. (SIGKILL then --resume: tests/test_train.py.)"""

from __future__ import annotations

import errno
import hashlib
import json
from pathlib import Path

import pytest
import torch

from tuneloop.demo import DEMO_DATA
from tuneloop.errors import DiskFullError
from tuneloop.train.checkpoints import MARKER, latest_complete
from tuneloop.train.options import TrainOptions
from tuneloop.train.run import Job, run

OPTIONS = {"profile_examples": 8, "precision": "fp32", "patience": 0, "layers": "all"}


def digest(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()
    }


@pytest.mark.slow
def test_a_full_disk_while_checkpointing_keeps_the_last_good_one(
    tmp_path, tiny_model_dir, monkeypatch
):
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(DEMO_DATA.read_text().splitlines()[:48]) + "\n")
    out = tmp_path / "adapter"
    options = TrainOptions(**OPTIONS, max_steps=8, eval_every=2)
    job = Job(data, out, str(tiny_model_dir), "lora", None, options, "tiny")
    real_save, seen = torch.save, {}

    def save_until_the_disk_is_full(obj, f, *args, **kwargs):
        if "checkpoint-4" in str(f):
            seen["checkpoint-2"] = digest(out / "checkpoints" / "checkpoint-2")
            Path(f).write_bytes(b"\0" * 64)  # what fitted before the disk filled up
            raise OSError(errno.ENOSPC, "No space left on device", str(f))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_until_the_disk_is_full)
    with pytest.raises(DiskFullError) as failed:
        run(job)
    message = str(failed.value)
    assert "no space left on the device while writing" in message and "checkpoint-4" in message
    assert "checkpoint-2, is intact" in message and f"tuneloop train --resume {out}" in message
    good = out / "checkpoints" / "checkpoint-2"
    assert (good / MARKER).is_file() and digest(good) == seen["checkpoint-2"]
    assert not (out / "checkpoints" / "checkpoint-4" / MARKER).exists()

    monkeypatch.setattr(torch, "save", real_save)  # space freed
    assert latest_complete(out / "checkpoints") == good
    result = run(Job.from_folder(out), resume=True)
    assert result.summary["steps"] == 8
    assert json.loads((out / "training_config.json").read_text())["status"] == "complete"
