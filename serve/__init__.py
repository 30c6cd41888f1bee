"""The OpenAI-compatible server, its engines, metrics and drift (installed as `tuneloop.serve`)."""
