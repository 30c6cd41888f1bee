"""Locust users for `tuneloop bench`'s HTTP section: streaming, greedy chat completions.

Any OpenAI-compatible server works (tuneloop serve, llama.cpp's llama-server). Each user
sends the bench prompts in turn, back to back, and notes per request: start, first content
chunk, end, completion tokens (from the final usage chunk, else the content chunks) and
whether it failed (a request whose connection dropped before any answer is sent once more,
and counted). When locust quits, the notes go to $TUNELOOP_BENCH_OUT as JSON; the bench
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
        note = {"start": time.time(), "first": None, "tokens": 0, "ok": False, "reconnects": 0}
        # A server may close an idle keep-alive connection just as the next request goes out
        # on it (llama-server does after a few requests); like an HTTP client library
        # retrying an idempotent request, send it again once on a fresh connection.
        while not self._stream(messages, note) and note["reconnects"] == 0:
            note["reconnects"] = 1
        RESULTS.append(note | {"end": time.time()})

    def _stream(self, messages: list, note: dict) -> bool:
        """One streamed completion into `note`; False when the connection dropped unanswered."""
        body = {
            "model": MODEL,
            "messages": messages,
            "max_tokens": MAX_TOKENS,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        chunks = 0
        with self.client.post(
            "/v1/chat/completions", json=body, stream=True, catch_response=True, name="chat"
        ) as response:
            if response.status_code == 0:  # no response at all: the connection was dropped
                response.failure(f"connection dropped: {response.error}")
                return False
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
                return True
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
        return True


@events.quitting.add_listener
def _write_notes(environment, **kwargs) -> None:  # noqa: ARG001
    Path(os.environ["TUNELOOP_BENCH_OUT"]).write_text(json.dumps(RESULTS), encoding="utf-8")
