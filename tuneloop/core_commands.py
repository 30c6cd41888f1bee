"""Small commands of the shared core."""

from __future__ import annotations

from tuneloop.demo import DEMO_DATA


def demo_path() -> int:
    """Print the path of the demo data set (support-ticket triage) shipped in the package."""
    print(DEMO_DATA)
    return 0
