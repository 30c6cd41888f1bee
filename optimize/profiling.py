"""Speed and memory of one model variant, measured in a fresh process.

A fresh process per variant keeps one model's memory out of another's peak resident set and
makes load time a cold(ish) start. Measured: load time, prefill and decode tokens/s at batch 1
and batch 8 (greedy, a fixed number of new tokens, end tokens ignored so every variant does the
same work; batch 8 is eight copies of one prompt, so no backend pads), and peak RSS. Each
speed is the best of `repeats` runs after a warm-up: on a shared
machine the best run is the one least disturbed by other processes.

Run directly: `python -m tuneloop.optimize.profiling MODEL_DIR PROMPTS.json`.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tuneloop.errors import TuneloopError

BATCH_SIZES = (1, 8)


@dataclass(frozen=True)
class SpeedProfile:
    load_seconds: float
    peak_rss_mb: float
    new_tokens: int
    threads: int
    prefill_tokens_per_s: dict[str, float]
    """By batch size ("1", "8")."""
    decode_tokens_per_s: dict[str, float]


def profile_in_subprocess(
    model: Path, prompts: list[list[int]], new_tokens: int, threads: int, repeats: int = 2
) -> SpeedProfile:
    """Run this module in a child process on `model` and return what it measured."""
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(prompts, f)
    command = [sys.executable, "-m", "tuneloop.optimize.profiling", str(model), f.name]
    command += ["--new-tokens", str(new_tokens), "--threads", str(threads)]
    command += ["--repeats", str(repeats)]
    try:
        done = subprocess.run(command, capture_output=True, text=True)
    finally:
        Path(f.name).unlink(missing_ok=True)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-3:])
        raise TuneloopError(f"profiling {model} failed:\n{tail}")
    return SpeedProfile(**json.loads(done.stdout.strip().splitlines()[-1]))


def measure(
    model_dir: Path, prompts: list[list[int]], new_tokens: int, threads: int, repeats: int
) -> SpeedProfile:
    from tuneloop.optimize.runtime import load_causal_lm

    started = time.perf_counter()
    model = load_causal_lm(model_dir, threads)
    load_seconds = time.perf_counter() - started
    model.generate(prompts[:1], 4, stop_at_eos=False)  # warm-up: first-run allocations
    prefill, decode = {}, {}
    for batch in BATCH_SIZES:
        rows = [prompts[0]] * batch  # equal lengths: every backend decodes a full batch
        runs = [model.generate(rows, new_tokens, stop_at_eos=False) for _ in range(repeats)]
        prefill[str(batch)] = max(r.prefill_tokens_per_s for r in runs)
        decode[str(batch)] = max(r.decode_tokens_per_s for r in runs)
    return SpeedProfile(load_seconds, peak_rss_mb(), new_tokens, threads, prefill, decode)


def peak_rss_mb(pid: int | None = None) -> float | None:
    """Peak resident memory of this process image, or of the running process `pid` (None when
    its status can't be read). Linux's ru_maxrss survives exec, so a child forked from a big
    parent would report the parent's peak; VmHWM starts afresh at exec."""
    status = Path(f"/proc/{pid or 'self'}/status")
    try:
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    if pid is not None:
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("prompts", type=Path, help="JSON list of token-id lists")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    prompts = json.loads(args.prompts.read_text())
    profile = measure(args.model, prompts, args.new_tokens, args.threads, args.repeats)
    print(json.dumps(asdict(profile)))


if __name__ == "__main__":
    main()
