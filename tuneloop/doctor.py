"""`tuneloop doctor`: what this machine has for each stage, and the command for what is missing."""

from __future__ import annotations

import json as jsonlib
import os
import platform
import shutil
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Literal

from tuneloop.embedded import EMBEDDED_MODELS, cached_folder, find_gguf, is_converted
from tuneloop.errors import MissingDependencyError
from tuneloop.paths import cache_dir

MIN_FREE_DISK_GB = 5
TORCH_INSTALL = "pip install torch==2.13.0  (a CPU build; see DEVELOPERS.md for GPU builds)"


@dataclass
class Finding:
    name: str
    status: Literal["ok", "missing", "warn", "info"]
    detail: str
    fix: str = ""
    required: bool = False


def doctor(*, json: bool = False) -> int:
    """Show what tuneloop found on this machine and how to install what is missing.

    Checks Python, torch and its device, transformers and PEFT, onnxruntime and its execution
    providers, the embedded model and its converted cache, Prometheus, the load generator and
    free disk. Exits 1 when something every command needs is missing.

    Args:
        json: print the findings as JSON.
    """
    findings = [check() for check in CHECKS]
    if json:
        print(jsonlib.dumps([asdict(f) for f in findings], indent=2))
    else:
        _print_table(findings)
    return 1 if any(f.required and f.status == "missing" for f in findings) else 0


def _print_table(findings: list[Finding]) -> None:
    width = max(len(f.name) for f in findings)
    for f in findings:
        print(f"{f.status:>7}  {f.name:<{width}}  {f.detail}")
    fixes = [f for f in findings if f.fix and f.status in ("missing", "warn")]
    if fixes:
        print("\nTo fix:")
        for f in fixes:
            print(f"  {f.name}: {f.fix}")
    else:
        print("\nEverything tuneloop uses is here.")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def check_python() -> Finding:
    ok = sys.version_info >= (3, 10)
    return Finding(
        "python",
        "ok" if ok else "missing",
        f"{platform.python_version()} ({sys.executable})",
        "install Python 3.10 or newer (3.11 recommended)",
        required=True,
    )


def check_torch() -> Finding:
    if _version("torch") is None:
        return Finding("torch", "missing", "not installed", TORCH_INSTALL, required=True)
    import torch

    if torch.cuda.is_available():
        device = f"cuda ({torch.cuda.device_count()}x {torch.cuda.get_device_name(0)})"
    elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        device = "mps"
    else:
        device = f"cpu, {torch.get_num_threads()} threads"
    return Finding("torch", "ok", f"{torch.__version__}, device: {device}", required=True)


def check_transformers() -> Finding:
    version = _version("transformers")
    if version is None:
        return Finding(
            "transformers",
            "missing",
            "not installed",
            "pip install 'transformers<4.58'",
            required=True,
        )
    peft, gguf = _version("peft"), _version("gguf")
    detail = f"{version}; peft {peft or 'missing'}; gguf {gguf or 'missing'}"
    fix = "" if peft and gguf else "pip install peft gguf"
    return Finding("transformers", "ok" if not fix else "missing", detail, fix, required=True)


def check_onnxruntime() -> Finding:
    if _version("onnxruntime") is None and _version("onnxruntime-gpu") is None:
        return Finding(
            "onnxruntime",
            "missing",
            "not installed (needed by `optimize` and the onnx backend)",
            "pip install 'tuneloop[onnx]'",
        )
    import onnxruntime

    providers = ", ".join(onnxruntime.get_available_providers())
    optimum = _version("optimum-onnx")
    detail = (
        f"{onnxruntime.__version__}, providers: {providers}; optimum-onnx {optimum or 'missing'}"
    )
    return Finding(
        "onnxruntime",
        "ok" if optimum else "warn",
        detail,
        "" if optimum else "pip install 'tuneloop[onnx]'",
    )


def check_bitsandbytes() -> Finding:
    version = _version("bitsandbytes")
    if version is None:
        return Finding(
            "bitsandbytes",
            "info",
            "not installed (only for qlora and bnb-* quantization)",
            "pip install 'tuneloop[gpu]'",
        )
    return Finding("bitsandbytes", "ok", version)


def check_embedded_model() -> Finding:
    name, model = next(iter(EMBEDDED_MODELS.items()))
    try:
        gguf = find_gguf(model)
    except MissingDependencyError as exc:
        return Finding(f"model {name}", "missing", str(exc), model.install, required=True)
    if is_converted(model):
        folder = cached_folder(model)
        size = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
        return Finding(
            f"model {name}", "ok", f"converted cache {folder} ({size:.0f} MB)", required=True
        )
    return Finding(
        f"model {name}",
        "ok",
        f"GGUF at {gguf}; converted on first use (~20 s) into {cached_folder(model)}",
        required=True,
    )


def check_prometheus() -> Finding:
    found = {
        "prometheus": shutil.which("prometheus"),
        "promtool": shutil.which("promtool"),
        # Debian names the Alertmanager binary prometheus-alertmanager.
        "alertmanager": shutil.which("prometheus-alertmanager") or shutil.which("alertmanager"),
    }
    missing = [tool for tool, path in found.items() if path is None]
    detail = ", ".join(f"{tool}: {path or 'not found'}" for tool, path in found.items())
    fix = (
        "sudo apt-get install prometheus prometheus-alertmanager  (Debian/Ubuntu)"
        if missing
        else ""
    )
    return Finding("prometheus", "warn" if missing else "ok", detail, fix)


def check_locust() -> Finding:
    version = _version("locust")
    if version is None:
        return Finding(
            "locust",
            "info",
            "not installed (load tests and `tuneloop bench`)",
            "pip install 'tuneloop[dev]'",
        )
    return Finding("locust", "ok", version)


def check_disk() -> Finding:
    root = cache_dir()
    probe = next((p for p in (root, *root.parents) if p.exists()), root.anchor)
    free_gb = shutil.disk_usage(probe).free / 1e9
    ok = free_gb >= MIN_FREE_DISK_GB
    return Finding(
        "disk",
        "ok" if ok else "warn",
        f"{free_gb:.1f} GB free at {probe} (cache: {root})",
        f"free space or set TUNELOOP_CACHE_DIR to a disk with {MIN_FREE_DISK_GB} GB free",
    )


def check_machine() -> Finding:
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return Finding(
        "machine",
        "info",
        f"{platform.machine()}, {os.cpu_count()} CPUs, {memory_gb:.0f} GiB memory",
    )


CHECKS = [
    check_python,
    check_machine,
    check_torch,
    check_transformers,
    check_embedded_model,
    check_onnxruntime,
    check_bitsandbytes,
    check_prometheus,
    check_locust,
    check_disk,
]
