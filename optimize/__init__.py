"""Merge, quantize, export and verify adapters (installed as `tuneloop.optimize`)."""
