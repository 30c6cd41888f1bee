"""Locust traffic for the monitoring integration test (run headless by the test).

TUNELOOP_LOAD_PHASE picks the traffic:
- `healthy`: support tickets held out of the adapter's reference profile (in distribution);
- `shifted`: prompts unlike the training data (code, verse, other languages, long lists),
  and one request in three invalid (unknown model, a limit exceeded, a body that is not JSON).
TUNELOOP_LOAD_MODEL names the adapter, TUNELOOP_LOAD_MAX_TOKENS the completion length, and
TUNELOOP_LOAD_REQUESTS how many requests the phase sends before locust stops (its --run-time
is only the upper bound), so the drift window fills the same way on a fast or a slow machine.
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

import gevent
from locust import HttpUser, constant, task
from locust.exception import StopUser

sys.path.insert(0, str(Path(__file__).resolve().parent))
from monitoring_helpers import demo_prompts  # noqa: E402

PHASE = os.environ.get("TUNELOOP_LOAD_PHASE", "healthy")
MODEL = os.environ.get("TUNELOOP_LOAD_MODEL", "support-triage")
MAX_TOKENS = int(os.environ.get("TUNELOOP_LOAD_MAX_TOKENS", "16"))
REQUESTS = int(os.environ.get("TUNELOOP_LOAD_REQUESTS", "0"))
sent = 0
_, HELD_OUT = demo_prompts()
SHIFTED = [
    "def quicksort(xs):\n    if len(xs) < 2:\n        return xs\n    pivot, *rest = xs\n"
    "    return quicksort([x for x in rest if x < pivot]) + [pivot] + "
    "quicksort([x for x in rest if x >= pivot])\n\nRewrite this in Rust with generics.",
    "Écris un sonnet sur la mer d'Iroise au crépuscule, en alexandrins, avec des rimes "
    "embrassées, puis explique la structure des strophes.",
    "Warum ist der Himmel blau? Erkläre die Rayleigh-Streuung mit Formeln und vergleiche "
    "sie mit der Mie-Streuung bei Wolken und Nebel.",
    "List the first twenty prime numbers, then the first twenty Fibonacci numbers, then "
    "their pairwise products, as a Markdown table with three columns.",
    "SELECT u.id, COUNT(o.id) FROM users u LEFT JOIN orders o ON o.user_id = u.id "
    "GROUP BY u.id HAVING COUNT(o.id) > 3; -- explain the query plan and suggest indexes",
    "Compose a haiku about quantum entanglement, then a limerick about the same topic, "
    "then translate both into Japanese and Spanish.",
    "東京から大阪までの新幹線の所要時間と料金を教えてください。また、おすすめの駅弁も。",
    "Prove that the square root of two is irrational, step by step, using proof by "
    "contradiction, and then generalize to the square root of any non-square integer.",
    "∫ x² eˣ dx = ? Show integration by parts twice, then verify by differentiating the "
    "result; finally compute the definite integral from 0 to 1 numerically.",
    "Write a bash one-liner that finds the ten largest files under /var/log, prints their "
    "sizes in human units, and explain each flag of find, du, sort and head.",
]


class TrafficUser(HttpUser):
    wait_time = constant(0.2)

    def chat(self, messages: list[dict], *, model: str = MODEL, name: str = "chat", **extra):
        body = {"model": model, "messages": messages, "max_tokens": MAX_TOKENS, "temperature": 0}
        body.update(extra)
        with self.client.post(
            "/v1/chat/completions", json=body, name=name, catch_response=True
        ) as response:
            if response.status_code == 200 or name.startswith("invalid"):
                response.success()  # invalid requests are expected to fail

    @task
    def request(self) -> None:
        global sent
        if REQUESTS and sent >= REQUESTS:
            # quit from a greenlet of its own: quit() kills the users, this one included
            gevent.spawn(self.environment.runner.quit)
            raise StopUser()
        sent += 1  # users are gevent greenlets: no lock needed
        if PHASE == "healthy":
            # each held-out ticket once before any repeats: a window of distinct prompts, so
            # its PSI reads the distribution, not the luck of a draw with replacement
            self.chat(HELD_OUT[(sent - 1) % len(HELD_OUT)])
            return
        roll = random.random()
        if roll < 2 / 3:
            self.chat([{"role": "user", "content": random.choice(SHIFTED)}])
        elif roll < 7 / 9:
            self.chat([{"role": "user", "content": "hello"}], model="no-such-adapter",
                      name="invalid model")  # fmt: skip
        elif roll < 8 / 9:
            self.chat([{"role": "user", "content": "hello"}], name="invalid limit",
                      max_tokens=10**9)  # fmt: skip
        else:
            with self.client.post(
                "/v1/chat/completions",
                data=json.dumps({"model": MODEL})[:-3],
                headers={"Content-Type": "application/json"},
                name="invalid json",
                catch_response=True,
            ) as response:
                response.success()
