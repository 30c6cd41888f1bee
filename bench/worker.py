"""One engine, one fresh process: speed at each batch size, perplexity, peak memory.

`python -m tuneloop.bench.worker SPEC.json` reads what to run (engine, model path, threads,
the token ids of `texts.BenchTexts`, new tokens, batch sizes, repeats) and prints one JSON
line with the results. A fresh process per engine keeps peak RSS honest (nothing of another
engine stays resident) and keeps one engine's thread pools away from the next one. Two other
modes: `sequential_requests` (the server-overhead reference) and `head_to_head` (several
engines taking turns in this one process, `head_to_head.py`).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np


def run(spec: dict) -> dict:
    from tuneloop.bench.engines import ENGINES
    from tuneloop.bench.texts import BenchTexts
    from tuneloop.optimize.profiling import peak_rss_mb

    texts = BenchTexts.from_json(spec["texts"])
    if spec.get("head_to_head"):
        from tuneloop.bench.head_to_head import take_turns

        return take_turns(spec, texts)
    started = time.perf_counter()
    engine = ENGINES[spec["engine"]](spec["model"], spec["threads"])
    result: dict = {"load_s": time.perf_counter() - started, "batches": {}}
    if spec.get("sequential_requests"):
        # warm-up, like the server's: a few tokens that share no prefix with the chats
        engine.answer(texts.prompts[-1][-8:], 8)
        result["sequential"] = sequential(engine, texts, spec)
        return result
    warm_up(engine, texts)
    for size in spec["batch_sizes"]:
        runs = [generate(engine, texts.prompts, size, spec) for _ in range(spec["repeats"])]
        best = max(runs, key=lambda r: r.decode_tokens / r.decode_s)  # least disturbed run
        result["batches"][str(size)] = best.to_json() | {"batch_size": size}
    if spec.get("perplexity", True):
        result["perplexity"] = perplexity(engine, texts)
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def warm_up(engine, texts) -> None:
    """A few tokens before timing anything: allocators, kernels, caches."""
    engine.generate(texts.prompts[:1], 8)


def generate(engine, prompts: list[list[int]], size: int, spec: dict):
    """Batch 1: every prompt in turn (how fast decoding goes depends on the text, for
    speculative decoding above all); larger batches: the first `size` prompts (repeated
    when there are fewer) together."""
    from tuneloop.bench.engines import Timing

    if size == 1:
        return Timing.total([engine.generate([p], spec["new_tokens"]) for p in prompts])
    batch = [prompts[i % len(prompts)] for i in range(size)]
    return engine.generate(batch, spec["new_tokens"])


def sequential(engine, texts, spec: dict) -> dict:
    """The requests one user sent through HTTP (the same chats, in the same order), run back
    to back in process: the fastest of `repeats` passes (the least disturbed, as for the batch
    sizes; it only makes the server's overhead look larger)."""
    chats = texts.chat_prompts or texts.prompts
    passes = []
    for _ in range(max(spec["repeats"], 1)):
        started, tokens = time.perf_counter(), 0
        for i in range(spec["sequential_requests"]):
            tokens += engine.answer(chats[i % len(chats)], spec["new_tokens"])
        seconds = time.perf_counter() - started
        passes.append({"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds})
    best = max(passes, key=lambda p: p["tokens_per_s"])
    return {"requests": spec["sequential_requests"], "passes": len(passes), **best}


def perplexity(engine, texts) -> dict:
    """exp(mean negative log-likelihood) of the reference answers, teacher-forced, plus each
    scored position's greedy token (for top-1 agreement between engines)."""
    nll, count, top1 = 0.0, 0, []
    for ids, start in zip(texts.scored, texts.answer_starts, strict=True):
        logits = engine.logits(ids)[start - 1 : len(ids) - 1].astype(np.float64)
        targets = np.asarray(ids[start:])
        shifted = logits - logits.max(axis=-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        nll -= float(log_probs[np.arange(len(targets)), targets].sum())
        count += len(targets)
        top1 += logits.argmax(-1).tolist()
    return {"ppl": float(np.exp(nll / count)), "tokens": count, "top1": top1}


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    print(json.dumps(run(spec)))


if __name__ == "__main__":
    main()
