"""Locust users for `tuneloop bench`'s HTTP section: streaming, greedy chat completions.

Any OpenAI-compatible server works (tuneloop serve, llama.cpp's llama-server). Each user
sends the bench prompts in turn, back to back, and notes per request: start, first content
chunk, end, completion tokens (from the final usage chunk, else the content chunks) and
whether it failed. When locust quits, the notes go to $TUNELOOP_BENCH_OUT as JSON; the bench
computes throughput and percentiles from them (locust's own statistics cannot see inside a
stream).

Environment: TUNELOOP_BENCH_PROMPTS (a JSON file: a list of message lists),
TUNELOOP_BENCH_MODEL, TUNELOOP_BENCH_MAX_TOKENS, TUNELOOP_BENCH_OUT.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path

from locust import HttpUser, constant, events, task

PROMPTS = json.loads(Path(os.environ["TUNELOOP_BENCH_PROMPTS"]).read_text(encoding="utf-8"))
MODEL = os.environ["TUNELOOP_BENCH_MODEL"]
MAX_TOKENS = int(os.environ["TUNELOOP_BENCH_MAX_TOKENS"])
RESULTS: list[dict] = []
_NEXT = itertools.count()


class StreamingChatUser(HttpUser):
    wait_time = constant(0)

    @task
    def chat(self) -> None:
        messages = PROMPTS[next(_NEXT) % len(PROMPTS)]
        body = {
            "model": MODEL,
            "messages": messages,
            "max_tokens": MAX_TOKENS,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        note = {"start": time.time(), "first": None, "tokens": 0, "ok": False}
        chunks = 0
        with self.client.post(
            "/v1/chat/completions", json=body, stream=True, catch_response=True, name="chat"
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
                RESULTS.append(note | {"end": time.time()})
                return
            for line in response.iter_lines():
                if not line.startswith(b"data: {"):
                    continue
                chunk = json.loads(line[6:])
                if chunk.get("usage"):
                    note["tokens"] = chunk["usage"].get("completion_tokens", 0)
                choices = chunk.get("choices") or [{}]
                if choices[0].get("delta", {}).get("content"):
                    chunks += 1
                    note["first"] = note["first"] or time.time()
            note["tokens"] = note["tokens"] or chunks
            note["ok"] = note["first"] is not None
            response.success()
        RESULTS.append(note | {"end": time.time()})


@events.quitting.add_listener
def _write_notes(environment, **kwargs) -> None:  # noqa: ARG001
    Path(os.environ["TUNELOOP_BENCH_OUT"]).write_text(json.dumps(RESULTS), encoding="utf-8")
