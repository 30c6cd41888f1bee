"""Command-line entry point of the benchmarks."""

from __future__ import annotations

from pathlib import Path

from tuneloop.errors import NotBuiltYetError


def bench(*, out: Path = Path("bench-results")) -> int:
    """Run tuneloop and its peers side by side on the same prompts and report ratios.

    Args:
        out: folder for the Markdown, JSON and PNG reports.
    """
    raise NotBuiltYetError("`tuneloop bench` is not built yet in this version")
