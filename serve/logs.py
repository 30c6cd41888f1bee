"""Structured logs: one JSON object per line, with the request id of the request being served.

The request id comes from the client's `X-Request-ID` header (if it is a sane token) or is
made up, is returned in the response's `X-Request-ID`, and is attached to every log line
written while that request is handled. Prompt and completion text never reach the log unless
`log_prompts` is on: lines carry sizes, ids, timings and outcomes.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
# Attributes every LogRecord has; anything else passed in `extra=` becomes a JSON field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        extra = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        fields = " ".join(f"{k}={v}" for k, v in extra.items() if k != "request_id")
        prefix = f"[{request_id}] " if request_id else ""
        return f"{prefix}{line}" + (f" {fields}" if fields else "")


def configure_logging(log_format: str, level: str) -> None:
    """Route the root logger (ours, uvicorn's, libraries') through one formatter on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Our own access log line (serve.app) replaces uvicorn's.
    logging.getLogger("uvicorn.access").disabled = True
    for noisy in ("transformers", "huggingface_hub", "urllib3", "filelock", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
