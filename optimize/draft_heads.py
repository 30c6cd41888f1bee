"""Draft heads: two small networks that guess the model's next two tokens from its own state.

The draft table (`ngram_draft`) guesses only after contexts it has seen verbatim in the
model's answers; on the bench prompts 45% of the passes had no confident guess and decoded
one token. A head reads the model's final hidden state at the position just computed and the
token the model chose there, so it guesses after contexts it has never seen, as Medusa's heads
do (Cai et al., 2024; the chosen token as a second input is EAGLE's idea, Li et al., 2024):

- head 1: (hidden state, embedding of the chosen token) -> the token after the chosen one;
- head 2: the same plus the embedding of head 1's guess -> the token after that;
- each Linear(in, `head_size`) -> SiLU -> Linear(`head_size`, V + 1), over the V tokens the
  training text uses (+1: "no guess").

`tuneloop optimize draft` trains them on the answering variant's hidden states over the
sequences the table is built from (training prompts with the model's own answers), in about a
minute, and writes them into every fused variant's graph (`draft_heads_graph`): a pass then
returns, beside the logits, the heads' guesses after each position. The runtime checks a
confident guess (probability >= HEAD_MIN_PROB) in the next pass like any drafted token, so
the heads change how many tokens a pass keeps, never which tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HEAD_MIN_PROB = 0.5
"""A head's guess is drafted when the head gives it at least this probability (and head 2's
only after head 1's): on the support-triage validation answers, such guesses were right ~9
times in 10, and a drafted token costs a fraction of a pass."""


@dataclass
class DraftHeads:
    """Trained heads as plain arrays: what the graph edit writes."""

    vocabulary: np.ndarray
    """int64 [V]: the token id of each class but the last ("no guess")."""
    layers: list[dict[str, np.ndarray]]
    """Per head: w1 [in, size], b1 [size], w2 [size, V + 1], b2 [V + 1] (float32)."""
    record: dict = field(default_factory=dict)
    """Size, vocabulary, training rows and held-out accuracy, for the artifact's manifest."""


def guessed(ids: np.ndarray, probs: np.ndarray, chosen: int) -> list[int]:
    """The confident guesses of one position (`ids` [3] = chosen, guess 1, guess 2; `probs`
    [2]) to draft after `chosen`, the token fed next; none when the heads guessed after
    another token (sampling chose a token that was not the most likely one)."""
    if int(ids[0]) != chosen:
        return []
    drafted = []
    for token, probability in zip(ids[1:].tolist(), probs.tolist(), strict=True):
        if token < 0 or probability < HEAD_MIN_PROB:
            break
        drafted.append(token)
    return drafted


def hidden_states(folder: Path, sequences: list[list[int]], threads: int | None = None):
    """The final norm's output at every position of each sequence [T, hidden], from the
    variant's own graph (a copy with that tensor as an extra output), and the graph's token
    embedding [vocab, hidden]."""
    import tempfile

    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from tuneloop.optimize.draft_heads_graph import embedding_table, logits_input
    from tuneloop.optimize.ort_runtime import ONNX_FILE, session_options
    from tuneloop.progress import bar

    model = onnx.load(str(Path(folder) / ONNX_FILE))
    embedding = embedding_table(model)
    hidden = logits_input(model.graph)
    model.graph.output.append(helper.make_tensor_value_info(hidden, TensorProto.FLOAT, None))
    with tempfile.TemporaryDirectory() as scratch:  # a file: models past 2 GB fit there too
        copy = Path(scratch) / ONNX_FILE
        onnx.save_model(model, str(copy), save_as_external_data=True, location="weights")
        del model
        options = session_options(threads)
        session = ort.InferenceSession(str(copy), options, providers=["CPUExecutionProvider"])
        states = [
            _final_states(session, hidden, ids)
            for ids in bar(sequences, desc="draft heads: hidden states", unit="answer")
        ]
    return states, embedding


def _final_states(session, hidden: str, ids: list[int]) -> np.ndarray:
    """One teacher-forced prefill of `ids` from an empty cache: the hidden states [T, d]."""
    from tuneloop.optimize.logits_positions import LOGITS_POSITIONS

    feeds = {"input_ids": np.asarray([ids], dtype=np.int64)}
    feeds["attention_mask"] = np.ones_like(feeds["input_ids"])
    feeds[LOGITS_POSITIONS] = np.arange(len(ids), dtype=np.int64)
    for past in session.get_inputs():
        if past.name.startswith("past_key_values."):
            shape = (1, int(past.shape[1]), 0, int(past.shape[3]))
            feeds[past.name] = np.zeros(shape, dtype=np.float32)
    return session.run([hidden], feeds)[0][0]


def build_heads(
    folder: Path, sequences: list[list[int]], size: int = 512, epochs: int = 4
) -> DraftHeads:
    """Heads for the fused variant in `folder`, trained on its hidden states over `sequences`
    (token ids: prompts with the model's answers)."""
    from tuneloop.optimize.draft_head_training import train_heads

    states, embedding = hidden_states(folder, sequences)
    return train_heads(sequences, states, embedding, size=size, epochs=epochs)


def write_heads(folder: Path, heads: DraftHeads) -> None:
    """Add `heads` to the fused variant in `folder` (replacing earlier ones), their MatMuls
    at 8 bits, and record them in its manifest with the model file's new hash."""
    from tuneloop.optimize.artifacts import ARTIFACT_FILE, read_artifact, save_json, sha256_file
    from tuneloop.optimize.draft_heads_graph import add_heads
    from tuneloop.optimize.onnx_files import load_model, replace_model
    from tuneloop.optimize.onnx_quant import BlockQuantRecipe, quantize_nodes
    from tuneloop.optimize.ort_runtime import ONNX_FILE

    folder = Path(folder)
    model, external = load_model(folder / ONNX_FILE)
    matmuls = add_heads(model.graph, heads)
    recipe = BlockQuantRecipe(bits=8, block_size=32, symmetric=True, accuracy_level=4)
    replace_model(quantize_nodes(model, recipe, matmuls), folder / ONNX_FILE, external)
    if (folder / ARTIFACT_FILE).is_file():
        manifest = read_artifact(folder)
        files = manifest.setdefault("files", {})
        for name in [ONNX_FILE, external]:
            if name in files:
                files[name] = sha256_file(folder / name)
        manifest["draft_heads"] = heads.record
        save_json(folder / ARTIFACT_FILE, manifest)
