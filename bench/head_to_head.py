"""Batch-1 decode of tuneloop and its llama.cpp peer, taking turns in one process.

The in-process rows of `tuneloop bench` run each engine in its own process, minutes apart
(peak memory needs that), and this machine's speed drifts by up to 20% over minutes: as much
as the differences target 1 is about. Here the contenders are loaded side by side into one
process and decode the same prompts taking turns prompt by prompt, round after round; each
round gives ratios measured under the same conditions, and the median of those per-round
ratios is the figure target 1 is judged on. Nothing else runs in that process between the
engines' turns.

Two kinds of rounds, both greedy:
- `rounds`: the 8 bench prompts, 128 new tokens each with the end token ignored, so every
  engine does the same work (the issue's measure);
- `answer_rounds`: ANSWER_PROMPTS held-out prompts, each answered up to its end token (at most
  128 tokens), as `tuneloop serve` answers them: tokens past the end of an answer are text
  no user receives, and speculative decoding guesses them worse than answers.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass

from tuneloop.bench.inproc import Engine, InprocOptions, fastest, run_worker
from tuneloop.bench.texts import BenchTexts

ROUNDS = 5
ANSWER_PROMPTS = 24
"""Held-out prompts of the answer rounds: answers are ~40-60 tokens, so more prompts than
the 128-token rounds' 8 for about as many tokens."""


@dataclass(frozen=True)
class Contenders:
    ours: list[Engine]
    """tuneloop's fastest gate-passing variant, one token per pass, then with its drafts."""
    peer: Engine
    """llama.cpp's fastest variant with perplexity within +2% of fp32."""


def contenders(rows: list[dict]) -> Contenders | None:
    """From the in-process rows (quality judged): who meets whom, or None when a side is
    missing (llama.cpp not built, no variant passing the gate)."""
    ours = [fastest(rows, engine, "passes") for engine in ("tuneloop", "tuneloop-drafted")]
    ours = [_engine(row) for row in ours if row is not None]
    peer = fastest(rows, "llama.cpp", "ppl_ok")
    if not ours or peer is None:
        return None
    return Contenders(ours, _engine(peer))


def run(found: Contenders, texts: BenchTexts, options: InprocOptions, rounds: int = ROUNDS):
    """Runs the rounds in one worker process; per-round tokens/s and the median ratios."""
    everyone = [*found.ours, found.peer]
    turns = [{"label": e.label, "engine": e.engine, "model": str(e.model)} for e in everyone]
    options = dataclasses.replace(options, head_to_head=turns, rounds=rounds)
    # The peer's engine sets the worker's environment (llama.cpp's library); the label, the log.
    names = " vs ".join(e.label for e in everyone)
    result = run_worker(
        dataclasses.replace(found.peer, label=f"head to head: {names}"), texts, options
    )
    if "rounds" not in result:
        return result  # {"skipped": why}
    ours = [e.label for e in found.ours]
    summary = summarize(result["rounds"], ours, found.peer.label)
    if result.get("answer_rounds"):
        answers = summarize(result["answer_rounds"], ours, found.peer.label)
        summary["answers"] = answers | {"prompts": result["answer_prompts"]}
    return summary


def summarize(rounds: list[dict], ours: list[str], peer: str) -> dict:
    """Median tokens/s per engine and, per tuneloop engine, the median (and range) of its
    per-round ratio to the peer."""
    ratios = {}
    for label in ours:
        per_round = [r[label] / r[peer] for r in rounds]
        ratios[label] = {
            "peer": peer,
            "median": statistics.median(per_round),
            "low": min(per_round),
            "high": max(per_round),
        }
    labels = [*ours, peer]
    medians = {label: statistics.median(r[label] for r in rounds) for label in labels}
    return {"rounds": rounds, "median_tok_s": medians, "ratios": ratios}


def take_turns(spec: dict, texts: BenchTexts) -> dict:
    """In the worker: load every contender, warm each up, then the rounds of both kinds."""
    from tuneloop.bench.engines import ENGINES
    from tuneloop.bench.worker import warm_up

    engines = {
        c["label"]: ENGINES[c["engine"]](c["model"], spec["threads"]) for c in spec["head_to_head"]
    }
    for engine in engines.values():
        warm_up(engine, texts)
    rounds, new_tokens = spec["rounds"], spec["new_tokens"]
    answered = (texts.chat_prompts or texts.prompts)[:ANSWER_PROMPTS]
    return {
        "rounds": rounds_of_turns(engines, texts.prompts, rounds, new_tokens),
        "answer_rounds": rounds_of_turns(engines, answered, rounds, new_tokens, stop_at_end=True),
        "answer_prompts": len(answered),
    }


def rounds_of_turns(
    engines: dict, prompts: list[list[int]], rounds: int, new_tokens: int, stop_at_end=False
):
    """Decode tokens/s per engine per round. In a round every engine decodes every prompt
    once (greedy; the end token ignored, or ending the answer with `stop_at_end`), taking
    turns prompt by prompt, so the engines are timed within seconds of each other (this
    machine drifts within a round too), and the order rotates from prompt to prompt, so no
    engine always goes first or last."""
    from tuneloop.bench.engines import Timing

    labels = list(engines)
    out = []
    for _ in range(rounds):
        timings: dict[str, list] = {label: [] for label in labels}
        for i, prompt in enumerate(prompts):
            shift = i % len(labels)
            for label in labels[shift:] + labels[:shift]:
                run = engines[label].generate([prompt], new_tokens, stop_at_end=stop_at_end)
                timings[label].append(run)
        out.append(
            {label: Timing.total(t).to_json()["decode_tok_s"] for label, t in timings.items()}
        )
    return out


def _engine(row: dict) -> Engine:
    return Engine(row["label"], row["engine"], row["model"], row["precision"])
