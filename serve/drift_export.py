"""Prompts served while drift is high, written as redacted chat JSONL for the next training run.

Opt-in (`--drift-export-dir DIR`). One file per served model or adapter, `DIR/NAME.jsonl`, in
tuneloop's chat format, so `tuneloop data check DIR/NAME.jsonl` reads it as is: the client's
messages, then the served answer as the assistant turn, all redacted (`serve.redaction`).
The answer is the model's own, not a label: `metadata.review` says so, and a person checks or
rewrites it before training on the file. Requests sent as token ids carry no messages and are
not exported.

The engine's worker only queues a reference to the finished request; the drift monitor's
thread redacts and writes. Writing stops (one warning, then a counted skip) once the export
files reach `drift_export_max_mb`. Prompt text never goes to the log.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import deque
from pathlib import Path

from tuneloop.serve.metrics import Metrics
from tuneloop.serve.redaction import redact
from tuneloop.serve.requests import RequestRecord

log = logging.getLogger(__name__)

QUEUE_LIMIT = 1000
"""Requests waiting to be written; beyond it the oldest are dropped (the writer fell behind)."""
REVIEW = "the assistant turn is the served answer, not a reference: check or rewrite it"
UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]")


class DriftExporter:
    def __init__(self, folder: Path, max_bytes: int, metrics: Metrics | None = None) -> None:
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.metrics = metrics
        self.written = 0
        self._queue: deque[tuple[tuple[str, str], RequestRecord, dict]] = deque(maxlen=QUEUE_LIMIT)
        self._size: int | None = None
        self._full_warned = False

    def submit(self, labels: tuple[str, str], record: RequestRecord, psi: dict) -> None:
        """Queue a finished request (worker thread: no text work here)."""
        if record.messages:
            self._queue.append((labels, record, psi))

    def flush(self) -> None:
        """Redact and append every queued request to its file."""
        while self._queue:
            labels, record, psi = self._queue.popleft()
            line = export_line(labels, record, psi)
            if line is not None:
                self._write(labels, line)

    def path_for(self, labels: tuple[str, str]) -> Path:
        model, adapter = labels
        name = model if adapter == "none" else adapter
        return self.folder / f"{UNSAFE_CHARS.sub('_', name)}.jsonl"

    def _write(self, labels: tuple[str, str], line: str) -> None:
        data = (line + "\n").encode("utf-8")
        if self._size is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._size = sum(p.stat().st_size for p in self.folder.glob("*.jsonl"))
        if self._size + len(data) > self.max_bytes:
            if not self._full_warned:
                log.warning(
                    "drift export: %s holds %d bytes, the cap (drift_export_max_mb); "
                    "not exporting more prompts",
                    self.folder,
                    self._size,
                )
                self._full_warned = True
            return
        with open(self.path_for(labels), "ab") as f:
            f.write(data)
        self._size += len(data)
        self.written += 1
        if self.metrics is not None:
            self.metrics.drift_exported.labels(*labels).inc()


def export_line(labels: tuple[str, str], record: RequestRecord, psi: dict) -> str | None:
    """The chat-format JSON line of one request, redacted; None when it has no answer text."""
    answer = record.texts[0] if record.texts else ""
    if not answer.strip():
        return None
    messages = [
        {"role": m["role"], "content": redact(m["content"])}
        for m in record.messages
        if m.get("content")
    ]
    messages.append({"role": "assistant", "content": redact(answer)})
    metadata = {
        "source": "tuneloop serve drift export",
        "model": labels[0],
        "adapter": labels[1],
        "request_id": record.request_id,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "drift_psi": {feature: round(value, 4) for feature, value in psi.items()},
        "review": REVIEW,
    }
    return json.dumps({"messages": messages, "metadata": metadata}, ensure_ascii=False)
