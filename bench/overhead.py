"""Target 3, the server's overhead at 1 user, measured in pairs.

The ratio compares tokens/s of one streaming user through HTTP with the same chats through
the server's engine in process. On a 2-core machine whose speed drifts, a single pair of
30-second runs swings by ~20 points even when the two run seconds apart (83% and 102% back
to back), so the bench takes several pairs: an HTTP run and the in-process run next to it,
the order alternating from pair to pair (a steady drift then favours neither side), and
reports the median pair's ratio.
"""

from __future__ import annotations

from collections.abc import Callable

PAIRS = 3


def paired_overhead(
    first_http: dict,
    http_run: Callable[[], dict],
    in_process: Callable[[int], dict | None],
    pairs: int = PAIRS,
) -> dict:
    """`first_http`: the 1-user HTTP row already measured, the first pair's HTTP side;
    `http_run()`: another 1-user run through the same server (a row: requests, tokens_per_s);
    `in_process(requests)`: that many chats, in the HTTP run's order, through the engine in
    process ({"tokens_per_s", ...}, or None when it could not run). A pair that runs in process
    first answers as many chats as the HTTP run before it sent.

    Returns {} when no pair completed, else overhead_ratio (the median pair's; of an even
    count, the lower middle one), the pairs, and in_process_1_user (the median pair's
    in-process side)."""
    done: list[dict] = []
    http = first_http
    for index in range(pairs):
        if index == 0:
            reference = in_process(http["requests"])
        elif index % 2 == 1:  # in process first, then HTTP
            reference, http = in_process(http["requests"]), http_run()
        else:
            http = http_run()
            reference = in_process(http["requests"])
        if reference is None or not http.get("requests") or not reference.get("tokens_per_s"):
            continue
        done.append(
            {
                "order": "in process first" if index % 2 else "HTTP first",
                "http_tokens_per_s": http["tokens_per_s"],
                "in_process": reference,
                "ratio": http["tokens_per_s"] / reference["tokens_per_s"],
            }
        )
    if not done:
        return {}
    median = sorted(done, key=lambda pair: pair["ratio"])[(len(done) - 1) // 2]
    return {
        "overhead_ratio": median["ratio"],
        "overhead_pairs": done,
        "in_process_1_user": median["in_process"],
    }
