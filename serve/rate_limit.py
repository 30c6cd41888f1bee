"""Per-key rate limiting: a token bucket of `rate_limit_rpm` requests per minute for each client.

A client is its API key (when the server has keys) or its address (when it has none). Each
bucket holds up to one minute's worth of requests and refills continuously, so a client may
burst to its limit and then gets one request every 60/rpm seconds; beyond that, 429 with a
`Retry-After` saying when the next request fits. Keys are stored as digests, never as given,
and the table of buckets is bounded (least recently seen clients are forgotten first), so a
flood of client addresses can't grow memory.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from tuneloop.serve.errors import RateLimited

MAX_CLIENTS = 100_000


class RateLimiter:
    def __init__(
        self,
        requests_per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        self.capacity = float(requests_per_minute)
        self.per_second = requests_per_minute / 60
        self._clock = clock
        self._max_clients = max_clients
        self._buckets: OrderedDict[bytes, tuple[float, float]] = OrderedDict()
        """client digest -> (tokens left, time of the last update)"""
        # FastAPI runs sync dependencies on a thread pool: two requests may check at once.
        self._lock = threading.Lock()

    def check(self, client: str) -> None:
        """Take one request from `client`'s bucket, or raise RateLimited."""
        key = hashlib.sha256(client.encode()).digest()
        now = self._clock()
        with self._lock:
            tokens, updated = self._buckets.pop(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - updated) * self.per_second)
            if tokens < 1:
                self._remember(key, tokens, now)
                wait = (1 - tokens) / self.per_second
                raise RateLimited(
                    f"rate limit reached: {self.capacity:g} requests per minute for this "
                    f"{'API key' if client.startswith('key:') else 'client'} "
                    f"(rate_limit_rpm); retry after {math.ceil(wait)} s",
                    retry_after_s=wait,
                )
            self._remember(key, tokens - 1, now)

    def _remember(self, key: bytes, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self._max_clients:
            self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)
