"""The training recipe, top to bottom: seed -> base -> data -> choices -> model -> trainer ->
train -> save -> profile -> report. `tuneloop train` and `tuneloop train --resume` call `run`.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from tuneloop import __version__
from tuneloop.errors import DiskFullError, MissingDependencyError, UsageError
from tuneloop.train.auto import resolve_choices
from tuneloop.train.options import TrainOptions

log = logging.getLogger(__name__)

CONFIG = "training_config.json"
CHECKPOINTS = "checkpoints"


@dataclass
class Job:
    """What to train: the inputs of one `tuneloop train` run, saved so --resume can rebuild it."""

    data: Path
    out: Path
    base: str
    method: str
    val: Path | None
    options: TrainOptions
    name: str

    def to_json(self) -> dict:
        return {
            "data": str(self.data),
            "out": str(self.out),
            "base": self.base,
            "method": self.method,
            "val": None if self.val is None else str(self.val),
            "name": self.name,
            "options": dataclasses.asdict(self.options),
        }

    @classmethod
    def from_folder(cls, folder: Path) -> Job:
        path = Path(folder) / CONFIG
        if not path.is_file():
            raise UsageError(f"--resume {folder}: no {CONFIG} there (not a tuneloop train folder)")
        config = json.loads(path.read_text())
        return cls(
            data=Path(config["data"]),
            out=Path(folder),
            base=config["base"],
            method=config["method"],
            val=Path(config["val"]) if config.get("val") else None,
            options=TrainOptions(**config["options"]),
            name=config["name"],
        )


@dataclass
class TrainResult:
    summary: dict
    model: object
    """the trained model (the kept, best weights), PEFT-wrapped unless `full`"""


def run(job: Job, *, resume: bool = False) -> TrainResult:
    import torch
    from transformers import set_seed

    from tuneloop.base_model import load_tokenizer, resolve_base
    from tuneloop.train.data import detect_label_field, load_training_data, task_description
    from tuneloop.train.manifest import base_fingerprint, context_length

    options, rank = job.options, int(os.environ.get("RANK", "0"))
    report_to = _reporters(options.report_to)
    _warn_if_cpus_busy()
    # 1) seed and base model
    set_seed(options.seed)
    resolved = resolve_base(job.base)
    tokenizer = load_tokenizer(resolved)
    max_seq_len = context_length(resolved) if options.max_seq_len == "auto" else options.max_seq_len
    # 2) data
    data = load_training_data(
        job.data,
        job.val,
        tokenizer,
        max_seq_len=max_seq_len,
        val_fraction=options.val_fraction,
        seed=options.seed,
        train_on_prompt=options.train_on_prompt,
    )
    label_field = options.label_field or detect_label_field(data.train)
    task = task_description(data.train, label_field)
    # 3) choices for the `auto` values, each with its reason
    packed = options.packing and job.method != "prompt-tuning"
    choices = resolve_choices(job.method, options, data, packed)
    bf16 = choices["precision"].value == "bf16"
    # 4) model, packed data and trainer
    from tuneloop.train.methods import build_model
    from tuneloop.train.trainer import build_trainer

    model, model_choice = build_model(resolved, job.method, options, tokenizer)
    trainer, schedule = build_trainer(job, model, tokenizer, data, choices, packed, bf16, report_to)
    config = _config(job, resolved, data, choices, schedule, model_choice, task, max_seq_len)
    config["base_fingerprint"] = base_fingerprint(resolved)
    if rank == 0:
        job.out.mkdir(parents=True, exist_ok=True)
        _write_json(job.out / CONFIG, {**config, "status": "running"})
    _log_choices(config, schedule)
    # 5) train, from the newest complete checkpoint when resuming
    checkpoint = _resume_point(job.out) if resume else None
    started = time.perf_counter()
    try:
        result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise _disk_full(job.out, exc) from exc
    seconds = time.perf_counter() - started
    summary = _summary(trainer, schedule, data, model_choice, seconds, result)
    # the kept weights, without the autocast wrapper accelerate put around forward
    model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
    _record_rank(job.out, trainer, summary)
    if rank != 0:
        return TrainResult(summary, model)
    # 6) save the kept (best) weights, the manifest, the drift profile and the reports
    _save(job, model, tokenizer, resolved, task)
    with torch.inference_mode():
        from tuneloop.train.profile import reference_profile

        profile = reference_profile(
            model,
            tokenizer,
            data.train_encoded,
            sample=options.profile_examples,
            seed=options.seed,
            base=config["base_fingerprint"],
        )
    profile.save(job.out / "reference_profile.json")
    _finish(job, config, summary, task)
    return TrainResult(summary, model)


def _reporters(report_to: str) -> list[str]:
    import importlib.util

    reporters = ["tensorboard"]
    if report_to != "none":
        if importlib.util.find_spec(report_to) is None:
            raise MissingDependencyError(f"--report-to {report_to} needs: pip install {report_to}")
        reporters.append(report_to)
    return reporters


def _warn_if_cpus_busy() -> None:
    """Say so when other work already keeps every core busy: training threads then wait on
    each other at every parallel step, and a run can take several times longer."""
    import torch

    if torch.cuda.is_available() or not hasattr(os, "getloadavg"):
        return
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load >= cores:
        log.warning(
            "the machine is busy (load average %.1f on %d cores): training will be slower than "
            "usual; with other jobs running, OMP_NUM_THREADS=1 often helps",
            load,
            cores,
        )


def _disk_full(out: Path, exc: OSError) -> DiskFullError:
    """The checkpoint being written is incomplete (no COMPLETE marker), so `--resume` sets it
    aside and continues from the last complete one, which the failed save never touched."""
    from tuneloop.train.checkpoints import checkpoints, is_complete

    complete = [c for c in checkpoints(out / CHECKPOINTS) if is_complete(c)]
    kept = (
        f"the last complete checkpoint, {complete[-1].name}, is intact"
        if complete
        else ("no checkpoint was complete yet")
    )
    return DiskFullError(
        f"no space left on the device while writing {exc.filename or out}; {kept}. Free some "
        f"space, then continue with: tuneloop train --resume {out}"
    )


def _resume_point(out: Path) -> Path | None:
    from tuneloop.train.checkpoints import latest_complete

    checkpoint = latest_complete(out / CHECKPOINTS)
    if checkpoint is None:
        log.warning("no complete checkpoint in %s: starting from the beginning", out / CHECKPOINTS)
    else:
        log.info("resuming from %s", checkpoint)
    return checkpoint


def _config(job, resolved, data, choices, schedule, model_choice, task, max_seq_len) -> dict:
    return {
        "format": 1,
        **job.to_json(),
        "tuneloop_version": __version__,
        "val_source": data.val_source,
        "dropped": data.dropped,
        "task": task,
        "resolved": {
            **{name: choice.value for name, choice in choices.items()},
            "choices": {name: dataclasses.asdict(c) for name, c in choices.items()},
            "max_seq_len": max_seq_len,
            "max_steps": schedule.max_steps,
            "eval_every": schedule.eval_every,
            "rows_per_step": schedule.rows_per_step,
            "schedule": schedule.describe(),
            "world_size": schedule.world_size,
        },
        "model": dataclasses.asdict(model_choice),
    }


def _log_choices(config: dict, schedule) -> None:
    for name, choice in config["resolved"]["choices"].items():
        log.info("%s = %s: %s", name, choice["value"], choice["reason"])
    log.info("model: %s", config["model"]["reason"])
    log.info("schedule: %s", schedule.describe())


def _summary(trainer, schedule, data, model_choice, seconds, result) -> dict:
    state = trainer.state
    evals = [h["eval_loss"] for h in state.log_history if "eval_loss" in h]
    best = state.best_model_checkpoint
    stopped_early = state.global_step < schedule.max_steps
    return {
        "steps": state.global_step,
        "stop_reason": "early stopping: validation loss stopped improving"
        if stopped_early
        else "all planned steps",
        "best_step": int(best.rsplit("-", 1)[1]) if best else state.global_step,
        "best_val_loss": state.best_metric,
        "first_val_loss": evals[0] if evals else None,
        "last_val_loss": evals[-1] if evals else None,
        "train_loss": result.training_loss,
        "train_seconds": seconds,
        "tokens_seen": state.num_input_tokens_seen,
        "tokens_per_second": state.num_input_tokens_seen / max(seconds, 1e-9),
        "train_examples": len(data.train_encoded),
        "trainable_params": model_choice.trainable_params,
        "total_params": model_choice.total_params,
    }


def _record_rank(out: Path, trainer, summary: dict) -> None:
    """With several processes, each writes a checksum of its trained weights to ranks/."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return
    digest = hashlib.sha256()
    for name, param in sorted(trainer.model.named_parameters()):
        if param.requires_grad:
            digest.update(name.encode())
            digest.update(param.detach().float().cpu().numpy().tobytes())
    rank = int(os.environ.get("RANK", "0"))
    (out / "ranks").mkdir(parents=True, exist_ok=True)
    _write_json(
        out / "ranks" / f"rank-{rank}.json",
        {"rank": rank, "steps": summary["steps"], "trainable_sha256": digest.hexdigest()},
    )


def _save(job: Job, model, tokenizer, resolved, task: dict) -> None:
    from tuneloop.train.manifest import write_manifest

    model.save_pretrained(job.out, safe_serialization=True)
    if job.method == "full":
        tokenizer.save_pretrained(job.out)
    write_manifest(job.out, name=job.name, method=job.method, resolved=resolved, task=task)


def _finish(job: Job, config: dict, summary: dict, task: dict) -> None:
    from tuneloop.train.report import write_model_card, write_report

    config = {**config, "status": "complete", "summary": summary}
    _write_json(job.out / CONFIG, config)
    write_report(job.out, config, summary)
    write_model_card(job.out, config, summary, task)
    shutil.rmtree(job.out / CHECKPOINTS, ignore_errors=True)
    log.info(
        "trained %s in %.0f s (%s); adapter, report and drift profile in %s",
        job.name,
        summary["train_seconds"],
        summary["stop_reason"],
        job.out,
    )


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
