"""Resolve `--base` to a local model folder, and load models and tokenizers from it.

`--base` accepts, in this order:
1. an alias of an embedded model (default `smollm2-135m-instruct`), converted once and cached;
2. a local folder holding a transformers model (config.json, safetensors weights, tokenizer);
3. a Hugging Face model id (`org/name`, optionally `org/name@revision`), downloaded with
   huggingface_hub into its usual cache.
Every command goes through `resolve_base`, so all of them accept the same spellings.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tuneloop.embedded import EMBEDDED_MODELS, ensure_converted
from tuneloop.errors import ModelLoadError, ModelNotFoundError

log = logging.getLogger(__name__)

DEFAULT_BASE = "smollm2-135m-instruct"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")
# Only these are fetched from the hub: weights as safetensors (never pickle) plus text files.
HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja", "*.tiktoken"]


@dataclass(frozen=True)
class ResolvedBase:
    """A `--base` value resolved to a folder on disk."""

    spec: str
    """What the user asked for (alias, folder or hub id)."""
    path: Path
    source: Literal["embedded", "local", "hub"]

    @property
    def name(self) -> str:
        """The name served as the base model's `model` id."""
        return self.path.name if self.source == "local" else self.spec


def resolve_base(spec: str | Path = DEFAULT_BASE) -> ResolvedBase:
    """Turn an alias, folder or hub id into a local model folder, converting or downloading once."""
    spec = str(spec)
    if spec.lower() in EMBEDDED_MODELS:
        folder = ensure_converted(EMBEDDED_MODELS[spec.lower()])
        return ResolvedBase(spec.lower(), folder, "embedded")
    path = Path(spec).expanduser()
    if path.is_dir():
        _check_model_folder(path)
        return ResolvedBase(spec, path.resolve(), "local")
    if path.exists():
        raise ModelNotFoundError(
            f"--base {spec}: is a file; expected a model folder, alias or hub id"
        )
    if HUB_ID.match(spec):
        return ResolvedBase(spec, download_from_hub(spec), "hub")
    known = ", ".join(EMBEDDED_MODELS)
    raise ModelNotFoundError(
        f"--base {spec!r} is neither a folder, an embedded alias ({known}) "
        "nor a Hugging Face model id like 'org/name'"
    )


def _check_model_folder(path: Path) -> None:
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(
            f"{path} has no config.json: it is not a transformers model folder"
        )
    if not any(path.glob("*.safetensors")):
        pickles = [p.name for p in path.glob("*.bin")] + [p.name for p in path.glob("*.pt")]
        hint = f" (found {', '.join(pickles)}: pickle files are never loaded)" if pickles else ""
        raise ModelLoadError(f"{path} holds no .safetensors weights{hint}")


def download_from_hub(model_id: str) -> Path:
    """Download (or reuse the cached copy of) a hub model; errors name the id and the reason."""
    from huggingface_hub import snapshot_download

    repo_id, _, revision = model_id.partition("@")
    try:
        folder = Path(
            snapshot_download(repo_id, revision=revision or None, allow_patterns=HUB_PATTERNS)
        )
    except Exception as exc:  # huggingface_hub raises a dozen types for one cause: no model
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelNotFoundError(
            f"could not get model '{model_id}' from the Hugging Face Hub ({type(exc).__name__}: "
            f"{reason}). Offline? Pass a local model folder, or the embedded default "
            f"'{DEFAULT_BASE}'."
        ) from exc
    _check_model_folder(folder)
    return folder


def load_tokenizer(base: str | ResolvedBase = DEFAULT_BASE):
    """The base model's tokenizer, with a padding token that is not the end token."""
    from transformers import AutoTokenizer

    resolved = base if isinstance(base, ResolvedBase) else resolve_base(base)
    tokenizer = AutoTokenizer.from_pretrained(resolved.path)
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        _pick_pad_token(tokenizer)
    return tokenizer


def _pick_pad_token(tokenizer) -> None:
    # Prefer an existing non-end special token; adding a new one would resize embeddings.
    for candidate in (tokenizer.unk_token, "<|endoftext|>", "<pad>", "<|finetune_right_pad_id|>"):
        if candidate and candidate in tokenizer.get_vocab() and candidate != tokenizer.eos_token:
            tokenizer.pad_token = candidate
            return
    raise ModelLoadError(
        f"tokenizer of {tokenizer.name_or_path} has no padding token distinct from its end token"
    )


def load_model(
    base: str | ResolvedBase = DEFAULT_BASE, *, dtype: str = "float32", device: str = "cpu"
):
    """The base model in eval mode on `device`, weights as `dtype` (float32, bfloat16, float16)."""
    import torch
    from transformers import AutoModelForCausalLM

    resolved = base if isinstance(base, ResolvedBase) else resolve_base(base)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            resolved.path, dtype=getattr(torch, dtype), use_safetensors=True
        )
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load model from {resolved.path}: {exc}") from exc
    return model.to(device).eval()
