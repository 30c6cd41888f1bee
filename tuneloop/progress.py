"""Progress for every stage that runs longer than about ten seconds.

Two shapes, so a newcomer can tell a slow stage from a hung one:
- `bar(...)`: a tqdm bar over the items a stage works through (answers, examples, steps), with
  the time left. On a terminal it redraws; written to a file or a pipe (CI logs, `| tee`) it
  prints a line at most every 10 s instead of hundreds of redraws.
- `Steps`: a stage made of a few opaque steps (an export, a quantization) that no bar can see
  inside. Each step logs when it starts and, when it ends, its time, the stage's time so far
  and an estimate of the time left (the steps' mean so far, times the steps left).
Both end with the stage's total time.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterable, Iterator

log = logging.getLogger(__name__)

FILE_INTERVAL_S = 10.0
"""Seconds between progress lines when the output is not a terminal."""


def bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str, unit: str):
    """A tqdm bar on stderr with the time left; use `.update(n)` when there is no iterable."""
    from tqdm.auto import tqdm

    terminal = sys.stderr.isatty()
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        mininterval=0.5 if terminal else FILE_INTERVAL_S,
        maxinterval=FILE_INTERVAL_S,
        dynamic_ncols=terminal,
        file=sys.stderr,
    )


def duration(seconds: float) -> str:
    """`42 s`, `3 min 05 s` or `1 h 02 min`: how long something took or will take."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Steps:
    """A stage of `total` steps, each timed, with the time left estimated after each one."""

    def __init__(self, stage: str, total: int, logger: logging.Logger = log) -> None:
        self.stage, self.total, self.log = stage, total, logger
        self.done = 0
        self.started = time.perf_counter()

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[None]:
        number = self.done + 1
        self.log.info("%s [%d/%d]: %s", self.stage, number, self.total, what)
        started = time.perf_counter()
        yield
        self.done = number
        now = time.perf_counter()
        elapsed = now - self.started
        left = elapsed / self.done * max(self.total - self.done, 0)
        estimate = f", about {duration(left)} left" if self.done < self.total else ""
        self.log.info(
            "%s [%d/%d]: %s took %s (%s so far%s)",
            self.stage,
            number,
            self.total,
            what,
            duration(now - started),
            duration(elapsed),
            estimate,
        )

    def finish(self) -> float:
        """Log the stage's total time and return it in seconds."""
        seconds = time.perf_counter() - self.started
        self.log.info("%s: done in %s", self.stage, duration(seconds))
        return seconds
