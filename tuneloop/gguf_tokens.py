"""Special tokens of a GGUF model, read from its metadata, and a tokenizer rebuilt to match them.

transformers' GGUF tokenizer conversion (checked with 4.57) gets SmolLM2 wrong: it makes
`<|im_start|>` (id 1) both BOS and EOS and prepends it to every input, while the GGUF metadata
says EOS is id 2 (`<|im_end|>`) and no BOS is added. With that tokenizer, generation never stops
at the end of an answer. The metadata is the source of truth; this module applies it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GGUFSpecialTokens:
    bos_id: int | None
    eos_id: int
    unk_id: int | None
    pad_id: int | None
    add_bos: bool
    tokenizer_model: str
    context_length: int | None
    chat_template: str | None


def read_special_tokens(gguf: Path) -> GGUFSpecialTokens:
    from gguf import GGUFReader

    fields = GGUFReader(gguf).fields

    def value(key: str, default=None):
        field = fields.get(key)
        return field.contents() if field is not None else default

    arch = value("general.architecture", "llama")
    return GGUFSpecialTokens(
        bos_id=value("tokenizer.ggml.bos_token_id"),
        eos_id=value("tokenizer.ggml.eos_token_id"),
        unk_id=value("tokenizer.ggml.unknown_token_id"),
        pad_id=value("tokenizer.ggml.padding_token_id"),
        add_bos=bool(value("tokenizer.ggml.add_bos_token", False)),
        tokenizer_model=value("tokenizer.ggml.model", ""),
        context_length=value(f"{arch}.context_length"),
        chat_template=value("tokenizer.chat_template"),
    )


def choose_pad_id(meta: GGUFSpecialTokens) -> int:
    """A padding id that is not the end token.

    The end token appears inside every chat prompt (it closes each turn), so a pad that equals
    it would be masked out of the labels and the model would never learn to stop.
    """
    for candidate in (meta.pad_id, meta.unk_id):
        if candidate is not None and candidate != meta.eos_id:
            return candidate
    raise ValueError("the GGUF defines no token that can serve as padding besides the end token")


def fixed_tokenizer(converted, meta: GGUFSpecialTokens):
    """Rebuild `converted` (transformers' GGUF tokenizer) with the special tokens of `meta`."""
    from tokenizers import decoders, processors
    from transformers import PreTrainedTokenizerFast

    backend = converted.backend_tokenizer
    if meta.tokenizer_model == "gpt2":
        # Byte-level BPE: transformers bolts a SentencePiece-style decoder (ByteFallback,
        # "▁" -> " ") onto it, which corrupts any text containing "▁". Use the plain one.
        backend.decoder = decoders.ByteLevel()
        backend.post_processor = processors.ByteLevel(trim_offsets=False)
    token = backend.id_to_token
    pad_id = choose_pad_id(meta)
    if meta.add_bos and meta.bos_id is not None:
        bos = token(meta.bos_id)
        backend.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, meta.bos_id)]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=token(meta.bos_id) if meta.bos_id is not None else None,
        eos_token=token(meta.eos_id),
        unk_token=token(meta.unk_id) if meta.unk_id is not None else None,
        pad_token=token(pad_id),
        chat_template=meta.chat_template or converted.chat_template,
        model_max_length=meta.context_length or converted.model_max_length,
        clean_up_tokenization_spaces=False,
        # Llama-family models take no token_type_ids; generate() rejects them.
        model_input_names=["input_ids", "attention_mask"],
    )
