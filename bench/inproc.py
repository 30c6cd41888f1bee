"""The in-process section of `tuneloop bench`: every engine on the same token ids, one run.

1) each engine runs in a fresh worker process (`worker.py`) with the same threads, prompts,
   new-token count and batch sizes, one after the other, each within a time limit;
2) quality is judged the same way for everyone: perplexity of the reference answers and
   top-1 agreement with the transformers fp32 run, against the int8 gate's thresholds;
3) the ratios that matter are computed within this run only (the machine's speed drifts).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tuneloop.bench import llama_peer
from tuneloop.bench.texts import BenchTexts

log = logging.getLogger(__name__)

MAX_PPL_CHANGE = 0.02
MIN_TOP1 = 0.97
"""The quality gate for 8-bit variants (`tuneloop optimize verify`'s defaults)."""


@dataclass
class Engine:
    label: str
    engine: str
    """A key of `engines.ENGINES`."""
    model: Path
    precision: str
    reference: bool = False


@dataclass
class InprocOptions:
    threads: int
    new_tokens: int = 128
    batch_sizes: tuple[int, ...] = (1, 8)
    repeats: int = 2
    engine_timeout_s: float = 600.0
    deadline: float = field(default_factory=lambda: time.monotonic() + 1800)
    """Monotonic time after which no further engine starts."""
    sequential_requests: int = 0
    """When set: run that many single requests back to back instead (the HTTP comparison)."""
    head_to_head: list[dict] = field(default_factory=list)
    """When set: these engines ({label, engine, model}) take turns in one process instead,
    for `rounds` rounds (`head_to_head.py`)."""
    rounds: int = 0


def run_inproc(engines: list[Engine], texts: BenchTexts, options: InprocOptions) -> dict:
    """Results per engine (or why it did not run), quality verdicts and the headline ratios."""
    rows = []
    for engine in engines:
        rows.append(
            {
                "label": engine.label,
                "engine": engine.engine,
                "precision": engine.precision,
                "model": str(engine.model),
                **run_worker(engine, texts, options),
            }
        )
    _judge_quality(rows)
    return {"rows": rows, "ratios": ratios(rows), "ratios_ppl": ratios(rows, "ppl_ok")}


def missing_llama_rows(reason: str) -> list[dict]:
    return [{"label": "llama.cpp", "engine": "llama.cpp", "precision": "-", "skipped": reason}]


def run_worker(engine: Engine, texts: BenchTexts, options: InprocOptions) -> dict:
    left = options.deadline - time.monotonic()
    if left <= 30:
        return {"skipped": "the bench's time limit was spent before this engine"}
    spec = {
        "engine": engine.engine,
        "model": str(engine.model),
        "threads": options.threads,
        "texts": texts.to_json(),
        "batch_sizes": list(options.batch_sizes),
        "new_tokens": options.new_tokens,
        "repeats": options.repeats,
        "sequential_requests": options.sequential_requests,
        "head_to_head": options.head_to_head,
        "rounds": options.rounds,
    }
    env = llama_peer.worker_env() if engine.engine == "llama.cpp" else None
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    log.info("bench: %s", engine.label)
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tuneloop.bench.worker", f.name],
            capture_output=True,
            text=True,
            env=env,
            timeout=min(options.engine_timeout_s, left),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"skipped": f"timed out after {time.monotonic() - started:.0f} s"}
    finally:
        Path(f.name).unlink(missing_ok=True)
    if done.returncode != 0:
        tail = " / ".join(done.stderr.strip().splitlines()[-3:])
        return {"skipped": f"failed (exit {done.returncode}): {tail}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _judge_quality(rows: list[dict]) -> None:
    """Perplexity change and top-1 agreement against the reference row (transformers fp32)."""
    reference = next((r for r in rows if r["engine"] == "transformers" and "perplexity" in r), None)
    for row in rows:
        if "perplexity" not in row or reference is None:
            continue
        ours, theirs = row["perplexity"], reference["perplexity"]
        change = ours["ppl"] / theirs["ppl"] - 1
        agree = sum(a == b for a, b in zip(ours["top1"], theirs["top1"], strict=True))
        top1 = agree / len(theirs["top1"])
        row["quality"] = {
            "ppl": ours["ppl"],
            "ppl_change": change,
            "top1_agreement": top1,
            "passes": change <= MAX_PPL_CHANGE and top1 >= MIN_TOP1,
            "ppl_ok": change <= MAX_PPL_CHANGE,
        }
    for row in rows:
        row.get("perplexity", {}).pop("top1", None)  # only needed for the agreement


def decode(row: dict, batch: int) -> float:
    return row.get("batches", {}).get(str(batch), {}).get("decode_tok_s", 0.0)


def fastest(rows: list[dict], engine: str, key: str, batch: str = "1") -> dict | None:
    """The row of `engine` with the fastest decoding at `batch` among those whose quality has
    `key` ("passes" or "ppl_ok"), or None."""
    qualified = [
        r
        for r in rows
        if r["engine"] == engine and r.get("quality", {}).get(key) and decode(r, batch)
    ]
    return max(qualified, key=lambda r: decode(r, batch)) if qualified else None


def ratios(rows: list[dict], key: str = "passes") -> dict:
    """tuneloop's fastest row against each peer's fastest, per batch, among the rows whose
    quality has `key` ("passes": the whole gate; "ppl_ok": perplexity within +2% of fp32,
    the speed target's own condition). Plain decoding (one token per pass, like every peer
    here) and speculative decoding with the draft table ("drafted_" keys, batch 1) apart."""
    out = _ratios(rows, key, "tuneloop", "")
    drafted = _ratios(rows, key, "tuneloop-drafted", "drafted_")
    return out | {k: v for k, v in drafted.items() if k.startswith("drafted_decode_b1")}


def _ratios(rows: list[dict], key: str, ours_engine: str, prefix: str) -> dict:
    out: dict = {}
    for batch in ("1", "8"):
        best = {}
        for engine in (ours_engine, "llama.cpp", "transformers"):
            if (row := fastest(rows, engine, key, batch)) is not None:
                best[engine] = row
        if ours_engine not in best:
            continue
        ours = best[ours_engine]
        for peer in ("llama.cpp", "transformers"):
            if peer in best:
                out[f"{prefix}decode_b{batch}_vs_{peer}"] = {
                    "tuneloop": ours["label"],
                    "peer": best[peer]["label"],
                    "ratio": decode(ours, batch) / decode(best[peer], batch),
                }
    return out
