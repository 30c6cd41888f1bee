"""Trainer callbacks: loss watchdog, metrics.jsonl, progress bar, checkpoint commit markers."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from transformers import TrainerCallback

from tuneloop.errors import TuneloopError
from tuneloop.train.checkpoints import mark_complete


class TrainingDivergedError(TuneloopError):
    """The loss became NaN/inf, or stayed far above its starting value."""


class LossWatchdog(TrainerCallback):
    """Abort when the loss is NaN, or `factor` x its first value for `patience` reports in a row.

    Training and validation losses are watched separately, each against its own first value.
    """

    def __init__(self, factor: float, patience: int) -> None:
        self.factor, self.patience = factor, patience
        self.start: dict[str, float] = {}
        self.strikes: dict[str, int] = {}

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key in ("loss", "eval_loss"):
            if logs and key in logs:
                self._check(key, float(logs[key]), state.global_step)

    def _check(self, key: str, value: float, step: int) -> None:
        name = "validation loss" if key == "eval_loss" else "training loss"
        if not math.isfinite(value):
            raise TrainingDivergedError(
                f"{name} is {value} at step {step}: training diverged. Lower --lr (try a third "
                "of it) or check the data with `tuneloop data check`"
            )
        start = self.start.setdefault(key, value)
        if value > self.factor * start:
            self.strikes[key] = self.strikes.get(key, 0) + 1
        else:
            self.strikes[key] = 0
        if self.strikes[key] >= self.patience:
            raise TrainingDivergedError(
                f"{name} {value:.3f} at step {step} has stayed above {self.factor:g} x its start "
                f"({start:.3f}) for {self.patience} reports: training diverged. Lower --lr"
            )


class MetricsLog(TrainerCallback):
    """Appends every log (loss, lr, eval loss, tokens/s) as a JSON line to metrics.jsonl."""

    def __init__(self, path: Path, world_size: int = 1) -> None:
        self.path = path
        self.world_size = world_size
        self.started = time.perf_counter()
        self.tokens_at_start: int | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()
        self.tokens_at_start = state.num_input_tokens_seen

    def tokens_per_second(self, state) -> float:
        seen = state.num_input_tokens_seen - (self.tokens_at_start or 0)
        return seen / max(time.perf_counter() - self.started, 1e-9)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        record = {
            "step": state.global_step,
            "epoch": round(state.epoch or 0.0, 4),
            "elapsed_s": round(time.perf_counter() - self.started, 2),
            "tokens_seen": state.num_input_tokens_seen,
            "tokens_per_s": round(self.tokens_per_second(state), 1),
            **{k: v for k, v in logs.items() if isinstance(v, (int, float))},
        }
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


class ProgressBar(TrainerCallback):
    """A tqdm bar over optimizer steps with loss, validation loss and tokens/s (ETA by tqdm)."""

    def __init__(self, metrics: MetricsLog) -> None:
        self.metrics = metrics
        self.bar = None
        self.postfix: dict[str, str] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=state.max_steps, initial=state.global_step, unit="step")

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.postfix["tok/s"] = f"{self.metrics.tokens_per_second(state):.0f}"
            self.bar.set_postfix(self.postfix, refresh=False)
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is not None and logs:
            if "loss" in logs:
                self.postfix["loss"] = f"{logs['loss']:.4f}"
            if "eval_loss" in logs:
                self.postfix["val"] = f"{logs['eval_loss']:.4f}"

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class EvaluateLastStep(TrainerCallback):
    """Evaluates (and checkpoints) the last step too, so the final weights can be the kept ones.

    Without it, steps after the last scheduled evaluation, those at the lowest learning rate,
    would be thrown away when the best checkpoint is restored.
    """

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps:
            control.should_evaluate = True
            control.should_save = True


class CommitCheckpoints(TrainerCallback):
    """Marks a checkpoint complete once the Trainer has written all of it (see `checkpoints`)."""

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            mark_complete(Path(args.output_dir) / f"checkpoint-{state.global_step}")


class StopAfterSteps(TrainerCallback):
    """Ends training after `steps` optimizer steps of this process, for crash tests.

    Set by the TUNELOOP_TEST_KILL_AFTER_STEPS environment variable: the process then kills
    itself with SIGKILL right after the step, as an out-of-memory killer would.
    """

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.done = 0

    def on_step_end(self, args, state, control, **kwargs):
        import os
        import signal

        self.done += 1
        if self.done >= self.steps:
            os.kill(os.getpid(), signal.SIGKILL)
