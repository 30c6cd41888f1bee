"""Continuous batching pays: aggregate tokens/s of 16 concurrent streaming clients vs 1 client.

Starts `tuneloop serve` once and, in alternating rounds against that same server, measures
(a) one client streaming requests back to back and (b) N clients streaming at the same time.
Each round reports generated tokens per second (counted from the servers' usage chunks),
time to first token and the gap between streamed tokens as the clients saw them; the ratio
of (b) to (a) within each round is the figure to quote, because other work on the machine
slows both phases of a round alike.

Run: `python -m tuneloop.bench.serve_concurrency` (embedded model, torch backend). Writes
bench-results/serve_concurrency.json and docs/serve_concurrency.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tuneloop.ports import free_port

PROMPTS = [
    "Write a long story about a lighthouse keeper and a lost parcel.",
    "Explain in detail how to return a damaged blender, step by step.",
    "Describe your ideal support team, with many examples.",
    "Tell me everything about shipping delays in winter.",
]


def main(argv: list[str] | None = None) -> dict:
    options = _options(argv)
    with _server(options) as url:
        asyncio.run(_one_client(url, options, requests=1))  # warm caches and allocator
        rounds = []
        for index in range(options.rounds):
            single = asyncio.run(_one_client(url, options, requests=options.single_requests))
            many = asyncio.run(_many_clients(url, options))
            ratio = many["tokens_per_s"] / single["tokens_per_s"]
            rounds.append(
                {"round": index + 1, "single": single, "concurrent": many, "ratio": round(ratio, 2)}
            )
            print(
                f"round {index + 1}: 1 client {single['tokens_per_s']:.1f} tok/s, "
                f"{options.clients} clients {many['tokens_per_s']:.1f} tok/s, ratio {ratio:.2f}x",
                flush=True,
            )
    result = {
        "model": options.base or "smollm2-135m-instruct",
        "clients": options.clients,
        "max_tokens": options.max_tokens,
        "threads": options.threads,
        "rounds": rounds,
        "ratio_median": round(statistics.median(r["ratio"] for r in rounds), 2),
    }
    _write(result, options)
    print(json.dumps({k: v for k, v in result.items() if k != "rounds"}, indent=2))
    return result


def _options(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help="base model (default: the embedded one)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--single-requests",
        type=int,
        default=4,
        help="requests the single client sends back to back per round",
    )
    parser.add_argument("--threads", type=int, default=None, help="passed to tuneloop serve")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--plot", type=Path, default=Path("docs/serve_concurrency.png"))
    return parser.parse_args(argv)


class _server:
    """`tuneloop serve` on a free loopback port, for the length of a `with` block."""

    def __init__(self, options) -> None:
        self.options = options

    def __enter__(self) -> str:
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "tuneloop",
            "serve",
            "--port",
            str(port),
            "--max-batch-size",
            str(self.options.clients),
            "--log-level",
            "warning",
        ]
        if self.options.base:
            command += ["--base", self.options.base]
        if self.options.threads:
            command += ["--threads", str(self.options.threads)]
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            command,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TUNELOOP_LOG_FORMAT": "text"},
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                raise SystemExit(f"server exited:\n{self.log.read().decode(errors='replace')}")
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise SystemExit("server not ready after 300 s")

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


async def _stream(client: httpx.AsyncClient, url: str, prompt: str, max_tokens: int) -> dict:
    body = {
        "model": (await _model(client, url)),
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    arrivals, tokens = [], 0
    async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            elif chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                arrivals.append(time.perf_counter())
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    return {"tokens": tokens, "ttft": arrivals[0] - started if arrivals else None, "gaps": gaps}


_MODEL: dict[str, str] = {}


async def _model(client: httpx.AsyncClient, url: str) -> str:
    if url not in _MODEL:
        _MODEL[url] = (await client.get(f"{url}/v1/models")).json()["data"][0]["id"]
    return _MODEL[url]


async def _one_client(url: str, options, requests: int) -> dict:
    async with httpx.AsyncClient(timeout=600) as client:
        started = time.perf_counter()
        results = [
            await _stream(client, url, PROMPTS[i % len(PROMPTS)], options.max_tokens)
            for i in range(requests)
        ]
        return _summary(results, time.perf_counter() - started)


async def _many_clients(url: str, options) -> dict:
    limits = httpx.Limits(max_connections=options.clients)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        started = time.perf_counter()
        results = await asyncio.gather(
            *(
                _stream(client, url, PROMPTS[i % len(PROMPTS)], options.max_tokens)
                for i in range(options.clients)
            )
        )
        return _summary(results, time.perf_counter() - started)


def _summary(results: list[dict], seconds: float) -> dict:
    tokens = sum(r["tokens"] for r in results)
    ttfts = [r["ttft"] for r in results if r["ttft"] is not None]
    gaps = [g for r in results for g in r["gaps"]]
    return {
        "requests": len(results),
        "tokens": tokens,
        "seconds": round(seconds, 2),
        "tokens_per_s": round(tokens / seconds, 2),
        "ttft_median_s": round(statistics.median(ttfts), 3) if ttfts else None,
        "gap_median_ms": round(statistics.median(gaps) * 1000, 1) if gaps else None,
    }


def _write(result: dict, options) -> None:
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / "serve_concurrency.json").write_text(json.dumps(result, indent=2))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    rounds = result["rounds"]
    labels = [f"round {r['round']}" for r in rounds]
    clients = f"{result['clients']} clients"
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    _bars(left, labels, rounds, "tokens_per_s", clients, ratio=True)
    left.set_ylabel("generated tokens/s, all clients")
    left.set_title("throughput")
    _bars(right, labels, rounds, "gap_median_ms", clients, ratio=False)
    right.set_ylabel("ms between streamed tokens (median)")
    right.set_title("what each client feels")
    fig.suptitle(f"tuneloop serve: {result['model']}, torch fp32 on CPU, same server")
    fig.tight_layout()
    options.plot.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(options.plot, dpi=110)


def _bars(ax, labels, rounds, key, clients, ratio: bool) -> None:
    single = [r["single"][key] or 0 for r in rounds]
    many = [r["concurrent"][key] or 0 for r in rounds]
    xs = range(len(rounds))
    ax.bar([x - 0.2 for x in xs], single, width=0.4, label="1 client")
    ax.bar([x + 0.2 for x in xs], many, width=0.4, label=clients)
    if ratio:
        for x, (s, m) in enumerate(zip(single, many, strict=True)):
            ax.text(x + 0.2, m, f"{m / s:.1f}x", ha="center", va="bottom")
    ax.set_xticks(list(xs), labels)
    ax.set_ylim(0, max(single + many) * 1.3)
    ax.legend(loc="upper left", ncol=2, fontsize="small")


if __name__ == "__main__":
    main()
