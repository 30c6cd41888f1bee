"""Multi-turn chats against a running server: time to first token and reused prompt tokens
per turn (what the prompt prefix cache of fused variants is for).

Each conversation starts with a held-out support ticket of the bench texts; every later turn
sends the whole conversation so far (the server's streamed answers included) plus a follow-up
question, as a chat client does. Run it against `tuneloop serve`, once as it is and once with
`--no-prefix-cache`:

    python -m tuneloop.bench.multi_turn --url http://127.0.0.1:8000 --model support-triage
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

FOLLOW_UPS = (
    "Thanks. Can you also check my last invoice?",
    "One more thing: how long will that take?",
)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--model", required=True)
    parser.add_argument("--conversations", type=int, default=12)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args(argv)
    from tuneloop.base_model import load_tokenizer, resolve_base
    from tuneloop.bench.texts import bench_texts

    openers = bench_texts(load_tokenizer(str(resolve_base().path)), scored=1).messages
    rows = run(args.url, args.model, openers[: args.conversations], args.turns, args.max_tokens)
    print("| turn | TTFT median ms | prompt tokens (mean) | of them reused (mean) |")
    print("|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['turn']} | {1000 * row['ttft_median_s']:.0f} | {row['prompt_tokens']:.0f} "
            f"| {row['cached_tokens']:.0f} |"
        )
    return rows


def run(url: str, model: str, openers: list[list[dict]], turns: int, max_tokens: int) -> list:
    """Per turn: median time to first token and mean prompt / reused prompt tokens."""
    import httpx

    notes: list[list[tuple[float, int, int]]] = [[] for _ in range(turns)]
    with httpx.Client(base_url=url, timeout=120) as client:
        for opener in openers:
            messages = list(opener)
            for turn in range(turns):
                answer, note = _stream(client, model, messages, max_tokens)
                notes[turn].append(note)
                follow_up = FOLLOW_UPS[turn % len(FOLLOW_UPS)]
                messages += [
                    {"role": "assistant", "content": answer},
                    {"role": "user", "content": follow_up},
                ]
    return [
        {
            "turn": turn + 1,
            "ttft_median_s": statistics.median(n[0] for n in turn_notes),
            "prompt_tokens": statistics.mean(n[1] for n in turn_notes),
            "cached_tokens": statistics.mean(n[2] for n in turn_notes),
        }
        for turn, turn_notes in enumerate(notes)
    ]


def _stream(client, model: str, messages: list[dict], max_tokens: int):
    """One streamed greedy answer: its text and (time to first token, prompt, reused tokens)."""
    body = {
        "model": model,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started, first, text, usage = time.perf_counter(), None, "", {}
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            usage = chunk.get("usage") or usage
            delta = (chunk.get("choices") or [{}])[0].get("delta", {}).get("content")
            if delta:
                first = first or time.perf_counter()
                text += delta
    cached = usage.get("prompt_tokens_details", {}).get("cached_tokens", 0)
    ttft = (first or time.perf_counter()) - started
    return text, (ttft, usage.get("prompt_tokens", 0), cached)


if __name__ == "__main__":
    main()
