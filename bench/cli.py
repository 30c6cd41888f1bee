"""`tuneloop bench`: tuneloop and its peers side by side, in one run, reported as ratios."""

from __future__ import annotations

import logging
import os
import platform
import time
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
    all_variants: bool = False,
) -> int:
    """Run tuneloop and its peers side by side on the same prompts and report ratios.

    In process: tuneloop's fastest artifact that passes the quality gate, transformers eager
    fp32 and llama.cpp (llama-cpp-python, when installed: `bash bench/build_llama_cpp.sh`),
    at batch 1 and 8: decode and prefill tokens/s, time to first token, peak RSS, perplexity
    and top-1 agreement on the same token ids. Writes bench.md, bench.json and bench.png.

    Args:
        out: folder for the Markdown, JSON and PNG reports.
        only: sections to run (inproc, http); default: all.
        model_dir: an optimized folder (`tuneloop optimize all --out`); its recommended
            variant is measured against its merged model. Default: the embedded base model,
            exported and quantized to fused int8 once into the tuneloop cache.
        threads: threads for every engine (default: the number of cores).
        new_tokens: tokens generated per sequence.
        repeats: timed runs per batch size (the fastest is kept: the least disturbed).
        time_limit: seconds after which no further engine starts.
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
    if "inproc" in sections:
        result["inproc"] = _inproc(model_dir, threads, new_tokens, repeats, deadline, all_variants)
    if "http" in sections:
        result["skipped_sections"]["HTTP"] = (
            "the locust section (tuneloop serve vs llama-server -np 8) is not built yet"
        )
    result["load_after"] = _load()
    from tuneloop.bench.report import write_report

    for path in write_report(result, Path(out)):
        print(f"wrote {path}")
    return 0


def _inproc(model_dir, threads, new_tokens, repeats, deadline, all_variants) -> dict:
    from tuneloop.base_model import load_tokenizer, resolve_base
    from tuneloop.bench import llama_peer
    from tuneloop.bench.inproc import Engine, InprocOptions, missing_llama_rows, run_inproc
    from tuneloop.bench.texts import bench_texts

    if model_dir is not None:
        reference, variants = _model_dir_engines(Path(model_dir), all_variants)
        shipped = None
    else:
        reference = resolve_base().path
        variants = [Engine("tuneloop fused-int8", "tuneloop", _base_artifact(reference), "int8")]
        shipped = llama_peer.shipped_gguf()
    texts = bench_texts(load_tokenizer(str(reference)), scored=24)
    engines = [Engine("transformers", "transformers", reference, "fp32", reference=True)]
    engines += variants
    problem = llama_peer.bindings_problem()
    notes: list[str] = []
    if problem is None:
        ggufs, notes = llama_peer.gguf_variants(reference, shipped)
        engines += [Engine(f"llama.cpp {k}", "llama.cpp", p, k) for k, p in ggufs.items()]
    options = InprocOptions(threads, new_tokens, (1, 8), repeats, deadline=deadline)
    section = run_inproc(engines, texts, options)
    if problem is not None:
        section["rows"] += missing_llama_rows(problem)
    section["notes"] = notes
    return section


def _model_dir_engines(model_dir: Path, all_variants: bool):
    from tuneloop.bench.inproc import Engine
    from tuneloop.optimize.artifacts import read_artifact, servable_variants

    reference = model_dir / "merged"
    names = servable_variants(model_dir)
    if not reference.is_dir() or not names:
        raise UsageError(
            f"--model-dir {model_dir}: expected `tuneloop optimize all` output (merged/ and a "
            "variant that passed its gate)"
        )
    chosen = names if all_variants else names[:1]
    return reference, [
        Engine(
            f"tuneloop {name}",
            "tuneloop",
            model_dir / name,
            str(read_artifact(model_dir / name).get("precision", "")),
        )
        for name in chosen
        if name != "merged"
    ]


def _base_artifact(reference: Path) -> Path:
    """The embedded model exported (fused graph) and quantized to int8, once, in the cache."""
    from tuneloop.optimize.export import export_onnx
    from tuneloop.optimize.quantize import quantize_model
    from tuneloop.paths import cache_dir

    root = cache_dir() / "bench" / Path(reference).name
    int8 = root / "fused-int8"
    if not (int8 / "model.onnx").is_file():
        print("bench: exporting and quantizing the base model once (a few minutes)")
        fp32 = root / "fused-fp32"
        if not (fp32 / "model.onnx").is_file():
            export_onnx(reference, fp32, force=True, fmt="onnx-fused")
        quantize_model(fp32, "int8", int8, force=True)
    return int8


def _load() -> float:
    return round(os.getloadavg()[0], 2)
