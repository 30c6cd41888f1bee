"""The HTTP section of `tuneloop bench`: servers under locust, same prompts, one run.

1) start a server (`tuneloop serve --model-dir`, then llama.cpp's `llama-server -np 8
   --cont-batching` when it has been built), wait until it answers;
2) for each user count, run locust headless for a bounded time: every user streams greedy
   chat completions of the bench prompts back to back;
3) from the per-request notes: aggregate generated tokens/s, p50/p99 time to first token,
   p50/p99 end-to-end latency, errors. Right after the 1-user run, the same requests run in
   process through the same engine give the server-overhead ratio;
4) each server's peak resident memory (after all its users), against the transformers fp32
   process of the in-process section.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tuneloop.optimize.profiling import peak_rss_mb
from tuneloop.ports import free_port

log = logging.getLogger(__name__)

LOCUSTFILE = Path(__file__).with_name("locust_stream.py")


def run_http(
    servers: list[dict], messages: list, users: list[int], options, after_run=None
) -> dict:
    """`servers`: {"label", "command", "model", "ready_path"}; results per server and users.
    `after_run(server, row, again)`, when given, is called right after each locust run, while
    the server idles; `again()` runs locust once more at the same user count and returns its
    row (the server-overhead reference runs there, in pairs with such runs: this machine's
    speed drifts over minutes)."""
    rows, peaks = [], {}
    for server in servers:
        if "skipped" in server:
            rows.append({"label": server["label"], "skipped": server["skipped"]})
            continue
        try:
            with _serving(server) as (url, process):
                for count in users:
                    locust_run = functools.partial(_row, url, server, messages, count, options)
                    rows.append(locust_run())
                    if after_run is not None:
                        after_run(server, rows[-1], locust_run)
                peaks[server["label"]] = peak_rss_mb(process.pid)
        except RuntimeError as exc:
            rows.append({"label": server["label"], "skipped": str(exc)})
    return {"rows": rows, "server_peak_rss_mb": peaks}


def _row(url: str, server: dict, messages: list, users: int, options) -> dict:
    notes = _locust(url, server["model"], messages, users, options)
    return {"label": server["label"], "users": users, **summarize(notes)}


def summarize(notes: list[dict]) -> dict:
    done = [n for n in notes if n["ok"]]
    reconnects = sum(n.get("reconnects", 0) for n in notes)
    if not done:
        return {"requests": 0, "errors": len(notes), "reconnects": reconnects, "tokens_per_s": 0.0}
    span = max(n["end"] for n in done) - min(n["start"] for n in done)
    ttft = np.array([n["first"] - n["start"] for n in done])
    e2e = np.array([n["end"] - n["start"] for n in done])
    return {
        "requests": len(done),
        "errors": len(notes) - len(done),
        "reconnects": reconnects,
        "tokens": int(sum(n["tokens"] for n in done)),
        "tokens_per_s": sum(n["tokens"] for n in done) / span if span else 0.0,
        "ttft_p50_s": float(np.percentile(ttft, 50)),
        "ttft_p99_s": float(np.percentile(ttft, 99)),
        "e2e_p50_s": float(np.percentile(e2e, 50)),
        "e2e_p99_s": float(np.percentile(e2e, 99)),
    }


def _locust(url: str, model: str, messages: list, users: int, options) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        prompts, out = Path(tmp) / "prompts.json", Path(tmp) / "notes.json"
        prompts.write_text(json.dumps(messages), encoding="utf-8")
        env = {
            **os.environ,
            "TUNELOOP_BENCH_PROMPTS": str(prompts),
            "TUNELOOP_BENCH_MODEL": model,
            "TUNELOOP_BENCH_MAX_TOKENS": str(options.max_tokens),
            "TUNELOOP_BENCH_OUT": str(out),
        }
        command = [
            sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
            "-u", str(users), "-r", str(users), "-t", f"{options.seconds}s",
            "--stop-timeout", str(options.stop_timeout), "--host", url, "--only-summary",
            "--loglevel", "WARNING",
        ]  # fmt: skip
        log.info("bench: locust, %d users against %s", users, url)
        subprocess.run(command, env=env, capture_output=True, check=False,
                       timeout=options.seconds + options.stop_timeout + 60)  # fmt: skip
        return json.loads(out.read_text(encoding="utf-8")) if out.is_file() else []


@contextlib.contextmanager
def _serving(server: dict):
    port = free_port()
    command = [part.replace("{port}", str(port)) for part in server["command"]]
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=server.get("env")
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(process, url + server["ready_path"], output)
            yield url, process
        finally:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_ready(process, url: str, output, timeout_s: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output.seek(0)
            tail = output.read().decode(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"the server exited: {' / '.join(tail)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"the server was not ready after {timeout_s:.0f} s")
