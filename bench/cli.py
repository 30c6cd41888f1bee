"""`tuneloop bench`: tuneloop and its peers side by side, in one run, reported as ratios."""

from __future__ import annotations

import logging
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tuneloop.errors import UsageError

log = logging.getLogger(__name__)

SECTIONS = ("inproc", "http")


def bench(
    *,
    out: Path = Path("bench-results/bench"),
    only: list[str] | None = None,
    model_dir: Path | None = None,
    threads: int | None = None,
    new_tokens: int = 128,
    repeats: int = 2,
    time_limit: int = 1800,
    users: list[int] | None = None,
    seconds: int = 30,
    all_variants: bool = False,
) -> int:
    """Run tuneloop and its peers side by side on the same prompts and report ratios.

    In process: tuneloop's fastest artifact that passes the quality gate, transformers eager
    fp32 and llama.cpp (llama-cpp-python, when built: `bash bench/build_llama_cpp.sh`), at
    batch 1 and 8: decode and prefill tokens/s, time to first token, peak RSS, perplexity and
    top-1 agreement on the same token ids; then target 1 again head to head (tuneloop's
    fastest passing variant, plain and with drafts, and llama.cpp's fastest within +2%
    perplexity taking turns in one process, round after round). HTTP: `tuneloop serve
    --model-dir` and llama.cpp's `llama-server -np 8 --cont-batching` under locust
    (headless, streaming users).
    Writes bench.md, bench.json and bench.png.

    Args:
        out: folder for the Markdown, JSON and PNG reports.
        only: sections to run (inproc, http); default: all.
        model_dir: an optimized folder (`tuneloop optimize all --out`); its recommended
            variant is measured against its merged model. Default: the embedded base model,
            exported, quantized to fused int8 and verified once into the tuneloop cache.
        threads: threads for every engine and server (default: the number of cores).
        new_tokens: tokens generated per sequence (max_tokens through HTTP).
        repeats: timed runs per batch size (the fastest is kept: the least disturbed).
        time_limit: seconds after which no further engine starts.
        users: concurrent streaming users of the HTTP section (default: 1 4 16).
        seconds: how long locust runs at each user count.
        all_variants: measure every servable variant of --model-dir, not only the recommended.
    """
    sections = list(only or SECTIONS)
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise UsageError(f"--only {' '.join(unknown)}: choose from {', '.join(SECTIONS)}")
    threads = threads or os.cpu_count() or 1
    deadline = time.monotonic() + time_limit
    result: dict = {
        "setup": {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "threads": threads,
            "new_tokens": new_tokens,
            "load_before": _load(),
        },
        "skipped_sections": {},
    }
    plan = _plan(model_dir, all_variants, served="http" in sections)
    if "inproc" in sections:
        result["inproc"] = _inproc(plan, threads, new_tokens, repeats, deadline)
    if "http" in sections:
        result["http"] = _http(plan, threads, new_tokens, users or [1, 4, 16], seconds, deadline)
        rows = result.get("inproc", {}).get("rows", [])
        fp32 = [r for r in rows if r["engine"] == "transformers" and "peak_rss_mb" in r]
        if fp32:  # target 4: the server's memory against the fp32 transformers process's
            result["http"]["reference_rss_mb"] = fp32[0]["peak_rss_mb"]
    result["load_after"] = _load()
    from tuneloop.bench.report import write_report

    for path in write_report(result, Path(out)):
        print(f"wrote {path}")
    return 0


@dataclass
class _Plan:
    reference: Path
    """The fp32 transformers folder every variant came from."""
    variants: list
    """`inproc.Engine`s of tuneloop's artifacts, the one to serve first."""
    serve_dir: Path
    """The optimized folder `tuneloop serve --model-dir` gets."""
    served_name: str
    texts: object
    shipped_gguf: Path | None = None
    gguf: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _plan(model_dir: Path | None, all_variants: bool, served: bool) -> _Plan:
    from tuneloop.base_model import load_tokenizer, resolve_base
    from tuneloop.bench import llama_peer
    from tuneloop.bench.inproc import Engine
    from tuneloop.bench.texts import bench_texts

    if model_dir is not None:
        reference, variants, shipped = *_model_dir_engines(Path(model_dir), all_variants), None
        serve_dir = Path(model_dir)
    else:
        reference = resolve_base().path
        serve_dir = _base_artifacts(reference, verified=served)
        variants = [Engine("tuneloop fused-int8", "tuneloop", serve_dir / "fused-int8", "int8")]
        shipped = llama_peer.shipped_gguf()
    from tuneloop.optimize.artifacts import read_artifact

    artifact = read_artifact(variants[0].model)
    name = f"{artifact.get('name')}:{artifact.get('variant') or variants[0].model.name}"
    texts = bench_texts(load_tokenizer(str(reference)), scored=24)
    return _Plan(reference, variants, serve_dir, name, texts, shipped)


def _inproc(plan: _Plan, threads, new_tokens, repeats, deadline) -> dict:
    from tuneloop.bench import head_to_head, llama_peer
    from tuneloop.bench.inproc import Engine, InprocOptions, missing_llama_rows, run_inproc

    engines = [Engine("transformers", "transformers", plan.reference, "fp32", reference=True)]
    engines += plan.variants
    problem = llama_peer.bindings_problem()
    if problem is None:
        plan.gguf, plan.notes = llama_peer.gguf_variants(plan.reference, plan.shipped_gguf)
        engines += [Engine(f"llama.cpp {k}", "llama.cpp", p, k) for k, p in plan.gguf.items()]
    options = InprocOptions(threads, new_tokens, (1, 8), repeats, deadline=deadline)
    section = run_inproc(engines, plan.texts, options)
    found = head_to_head.contenders(section["rows"])
    if found is not None:  # target 1 again, the contenders taking turns in one process
        section["head_to_head"] = head_to_head.run(found, plan.texts, options)
    if problem is not None:
        section["rows"] += missing_llama_rows(problem)
    section["notes"] = plan.notes
    return section


@dataclass
class _HttpOptions:
    max_tokens: int
    seconds: int
    stop_timeout: int = 60


def _http(plan: _Plan, threads, new_tokens, users, seconds, deadline) -> dict:
    from tuneloop.bench import llama_peer
    from tuneloop.bench.engines import ServedEngine
    from tuneloop.bench.http import run_http
    from tuneloop.bench.inproc import Engine, InprocOptions, run_worker
    from tuneloop.bench.overhead import paired_overhead

    tuneloop = {
        "label": f"tuneloop serve ({plan.variants[0].label.removeprefix('tuneloop ')})",
        "command": [
            sys.executable,
            "-m",
            "tuneloop",
            "serve",
            "--model-dir",
            str(plan.serve_dir),
            "--variant",
            plan.variants[0].model.name,
            "--port",
            "{port}",
            "--threads",
            str(threads),
            "--max-batch-size",
            str(ServedEngine.MAX_BATCH_SIZE),
            "--log-level",
            "warning",
        ],  # fmt: skip
        "ready_path": "/ready",
        "model": plan.served_name,
    }
    overhead: dict = {}

    def after_run(server: dict, row: dict, again) -> None:
        """Right after tuneloop's 1-user run: the server-overhead reference, the same chats
        through the same engine in process, in pairs with 1-user runs (`overhead.py`)."""
        if server is not tuneloop or row.get("users") != 1 or not row.get("requests"):
            return
        engine = Engine("tuneloop in process", "tuneloop-served", plan.variants[0].model, "")

        def in_process(requests: int) -> dict | None:
            options = InprocOptions(threads, new_tokens, (), repeats=1, deadline=deadline)
            options.sequential_requests = requests
            return run_worker(engine, plan.texts, options).get("sequential")

        overhead.update(paired_overhead(row, again, in_process))

    servers = [tuneloop, _llama_server(plan, threads, llama_peer)]
    options = _HttpOptions(new_tokens, seconds)
    section = run_http(servers, plan.texts.messages, users, options, after_run)
    return section | overhead


def _llama_server(plan: _Plan, threads: int, llama_peer) -> dict:
    binary = llama_peer.tool("llama-server")
    label = "llama-server -np 8"
    if binary is None:
        return {"label": label, "skipped": llama_peer.SERVER_HINT}
    gguf = plan.gguf.get("Q8_0") or next(iter(plan.gguf.values()), None)
    if gguf is None:
        return {"label": label, "skipped": "no GGUF file of the model (see the notes)"}
    return {
        "label": f"{label} ({gguf.stem.removeprefix('model-')})",
        "command": [
            str(binary),
            "-m",
            str(gguf),
            "-np",
            "8",
            "--cont-batching",
            "-t",
            str(threads),
            "-c",
            str(8 * 1024),
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
        ],  # fmt: skip
        "ready_path": "/health",
        "model": plan.served_name,
        "env": llama_peer.worker_env(),
    }


def _model_dir_engines(model_dir: Path, all_variants: bool):
    from tuneloop.bench.inproc import Engine
    from tuneloop.optimize.artifacts import read_artifact, servable_variants
    from tuneloop.optimize.ngram_draft import DRAFT_FILE

    names = [n for n in servable_variants(model_dir) if n != "merged"]
    reference = model_dir / "merged"
    if not names:
        raise UsageError(
            f"--model-dir {model_dir}: no variant that passed its quality gate "
            "(`tuneloop optimize all` writes and verifies them)"
        )
    chosen = names if all_variants else names[:1]
    engines = []
    for name in chosen:
        precision = str(read_artifact(model_dir / name).get("precision", ""))
        engines.append(Engine(f"tuneloop {name}", "tuneloop", model_dir / name, precision))
        if (model_dir / name / DRAFT_FILE).is_file():
            label = f"tuneloop {name} + drafts"
            engines.append(Engine(label, "tuneloop-drafted", model_dir / name, precision))
    return reference, engines


def _base_artifacts(reference: Path, verified: bool) -> Path:
    """The embedded model exported (fused graph) and quantized to int8 once, in the cache.

    With `verified`, the gate (quality only) runs once too, so that `serve --model-dir`
    accepts the folder. The in-process section judges quality itself on its own text, with
    the gate's thresholds, so it needs no verdict."""
    from tuneloop.optimize.artifacts import read_artifact
    from tuneloop.optimize.export import export_onnx
    from tuneloop.optimize.quantize import quantize_model
    from tuneloop.paths import cache_dir

    root = cache_dir() / "bench" / Path(reference).name
    fp32, int8 = root / "fused-fp32", root / "fused-int8"
    if not (int8 / "model.onnx").is_file():
        print("bench: exporting and quantizing the base model once (a few minutes)")
        if not (fp32 / "model.onnx").is_file():
            export_onnx(reference, fp32, force=True, fmt="onnx-fused")
        quantize_model(fp32, "int8", int8, force=True)
    if verified and read_artifact(int8).get("gate", {}).get("status") != "passed":
        _verify(reference, int8)
    return root


def _verify(reference: Path, candidate: Path) -> None:
    """The quality gate, as `tuneloop optimize verify --no-speed` runs it."""
    import subprocess

    from tuneloop.demo import DEMO_DATA

    print(f"bench: verifying {candidate.name} against {reference.name} (quality only)")
    command = [
        sys.executable, "-m", "tuneloop", "optimize", "verify", "--reference", str(reference),
        "--candidate", str(candidate), "--data", str(DEMO_DATA), "--samples", "32", "--no-speed",
    ]  # fmt: skip
    subprocess.run(command, check=False)


def _load() -> float:
    return round(os.getloadavg()[0], 2)
