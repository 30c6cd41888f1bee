"""tuneloop: from a curated dataset to a monitored production endpoint, and back to retraining."""

__version__ = "0.1.0"
