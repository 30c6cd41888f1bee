"""Data curation and adapter training (installed as `tuneloop.train`)."""
