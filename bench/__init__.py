"""Benchmarks that run tuneloop and its peers side by side (installed as `tuneloop.bench`)."""
