"""Drive a GroupQueryAttention graph (the fused onnxruntime-genai graph) over a KV cache of slots.

The fused graph's attention operator (com.microsoft GroupQueryAttention) reads each row's
length from the attention mask (`seqlens_k` = sum(mask) - 1) and writes the new keys and
values right after that row's past. Rows are therefore *left-aligned*: sequence i occupies
columns [0, length_i) of its row and new tokens land at column length_i. Left padding, as an
optimum-exported graph takes it, shifts every position and gives wrong results; this layout
is the one the operator was written for.

What makes decoding fast here:
- one preallocated buffer per layer for keys and one for values, [slots, kv_heads, capacity,
  head_dim], bound both as the `past_key_values.*` input and as the `present.*` output: the
  operator sees the same pointer and appends in place (past-present buffer sharing), so no
  step copies the cache;
- the attention mask is kept as wide as the buffer ([slots, capacity], a 1 per real token), so
  the decode binding of a batch size never changes: each step writes the new token ids into a
  bound array, sets one mask cell per row, and runs. No Python work grows with the cache.

Sequences that decode together must sit in slots 0..B-1; `move` copies a sequence from one
slot to another (only its real columns), so callers keep the running rows packed.
The operator only accepts a multi-token input after a past for one row at a time
(`prefill(slot, tokens)` continues a slot's sequence, e.g. a long prompt in chunks).
A graph with the `logits_positions` input (see `logits_positions`) computes the output
projection for a prompt's last position only, unless every position's logits are asked for.
A graph with draft heads (`draft_heads`) also returns their guesses at those positions;
`guessed` reads the last run's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tuneloop.errors import ModelLoadError
from tuneloop.optimize.draft_heads import guessed
from tuneloop.optimize.draft_heads_graph import DRAFT_IDS, DRAFT_PROBS
from tuneloop.optimize.logits_positions import LOGITS_POSITIONS

MIN_CAPACITY = 256
_LAST = np.array([-1], dtype=np.int64)
"""`logits_positions` of decoding and prefilling: the last position of each row."""


@dataclass
class _Buffers:
    """The cache and the arrays bound to the decode runs, for one capacity."""

    keys: list[np.ndarray]
    values: list[np.ndarray]
    mask: np.ndarray
    """[slots, capacity] int64: 1 for every cached token of a slot, plus the one being added."""
    decode_bindings: dict[int, tuple] = field(default_factory=dict)
    """Batch size -> (IOBinding, bound input ids [B, 1], bound logits [B, 1, vocab], bound
    guesses or None)."""
    extend_bindings: dict[int, tuple] = field(default_factory=dict)
    """Token count T -> (IOBinding, ids [1, T], logits [1, T, vocab], logits positions [T],
    guesses or None) of `extend`; the arrays live here because the binding holds only their
    addresses."""


class KVSlots:
    """A GroupQueryAttention ONNX session plus a cache for `slots` sequences."""

    def __init__(self, session, slots: int, capacity: int = MIN_CAPACITY) -> None:
        self.session = session
        inputs = {i.name: i for i in session.get_inputs()}
        past = sorted((n for n in inputs if n.startswith("past_key_values.")), key=_layer_order)
        if not past or "position_ids" in inputs:
            raise ModelLoadError(
                "KV slots need a GroupQueryAttention graph (input_ids, attention_mask, "
                "past_key_values.N.key|value, no position_ids): the fused export"
            )
        self.layers = len(past) // 2
        shape = inputs[past[0]].shape  # [batch, kv heads, past length, head dim]
        self.kv_heads, self.head_dim = int(shape[1]), int(shape[3])
        self.vocab = int(session.get_outputs()[0].shape[-1])
        self.picks_positions = LOGITS_POSITIONS in inputs
        self.has_heads = DRAFT_IDS in {o.name for o in session.get_outputs()}
        self.guesses: tuple[np.ndarray, np.ndarray] | None = None
        """The draft heads' output of the last run, [rows, positions, 3] ids and [rows,
        positions, 2] probabilities (None without heads); the next run writes over them."""
        self.slots = slots
        self.lengths = np.zeros(slots, dtype=np.int64)
        """Tokens cached per slot."""
        self._buffers = self._allocate(max(capacity, 1))

    @property
    def capacity(self) -> int:
        """Tokens each slot can hold before the buffers grow."""
        return self._buffers.mask.shape[1]

    def cache_bytes(self) -> int:
        return sum(
            k.nbytes + v.nbytes
            for k, v in zip(self._buffers.keys, self._buffers.values, strict=True)
        )

    def reserve(self, length: int) -> None:
        """Make every slot able to hold `length` tokens (grows by doubling, copying the cache)."""
        if length <= self.capacity:
            return
        capacity = self.capacity
        while capacity < length:
            capacity *= 2
        old, self._buffers = self._buffers, self._allocate(capacity)
        used = int(self.lengths.max(initial=0))
        for source, target in zip(
            old.keys + old.values, self._buffers.keys + self._buffers.values, strict=True
        ):
            target[:, :, :used] = source[:, :, :used]
        self._buffers.mask[:, : old.mask.shape[1]] = old.mask

    def clear(self, slot: int) -> None:
        self.lengths[slot] = 0
        self._buffers.mask[slot] = 0

    def truncate(self, slot: int, length: int) -> None:
        """Keep the first `length` tokens of a slot's sequence (drop rejected draft tokens:
        the next run writes over their columns)."""
        self.lengths[slot] = length
        self._buffers.mask[slot, length:] = 0

    def move(self, source: int, target: int, count: int | None = None) -> None:
        """Copy the sequence in slot `source` (or its first `count` tokens) into slot `target`;
        the source keeps its copy."""
        used = int(self.lengths[source]) if count is None else min(count, int(self.lengths[source]))
        if source == target:
            return
        for array in self._buffers.keys + self._buffers.values:
            array[target, :, :used] = array[source, :, :used]
        self.lengths[target] = used
        self._buffers.mask[target, :used] = 1
        self._buffers.mask[target, used:] = 0

    def prefill(self, slot: int, tokens: list[int], all_logits: bool = False) -> np.ndarray:
        """Append `tokens` to the sequence in `slot`; logits of the last one [vocab] (or of
        every new position [len(tokens), vocab] with `all_logits`)."""
        start, count = int(self.lengths[slot]), len(tokens)
        self.reserve(start + count)
        # A first prompt is recognised by mask width == new tokens; a continuation sees its past.
        mask = np.ones((1, start + count), dtype=np.int64)
        ids = np.asarray([tokens], dtype=np.int64)
        positions = np.arange(count, dtype=np.int64) if all_logits else _LAST
        width = count if all_logits or not self.picks_positions else 1
        logits = np.empty((1, width, self.vocab), dtype=np.float32)
        binding, guesses = self._binding(ids, mask, logits, slot, rows=1, positions=positions)
        self.session.run_with_iobinding(binding)
        self.guesses = guesses
        self.lengths[slot] = start + count
        self._buffers.mask[slot, : start + count] = 1
        self._buffers.mask[slot, start + count :] = 0
        return logits[0] if all_logits else logits[0, -1]

    def decode(self, tokens: np.ndarray) -> np.ndarray:
        """One new token for each of slots 0..B-1 (B = len(tokens)); their logits [B, vocab]."""
        rows = len(tokens)
        self.reserve(int(self.lengths[:rows].max()) + 1)
        buffers = self._buffers
        if rows not in buffers.decode_bindings:
            ids = np.zeros((rows, 1), dtype=np.int64)
            logits = np.empty((rows, 1, self.vocab), dtype=np.float32)
            binding, guesses = self._binding(ids, buffers.mask[:rows], logits, 0, rows)
            buffers.decode_bindings[rows] = (binding, ids, logits, guesses)
        binding, ids, logits, guesses = buffers.decode_bindings[rows]
        ids[:, 0] = tokens
        buffers.mask[np.arange(rows), self.lengths[:rows]] = 1
        self.session.run_with_iobinding(binding)
        self.guesses = guesses
        self.lengths[:rows] += 1
        return logits[:, 0]

    def extend(self, tokens: list[int]) -> np.ndarray:
        """Append several tokens to the sequence in slot 0 in one run (a last token plus
        drafted ones, to check them); the logits after each [len(tokens), vocab].

        Unlike `prefill`, the binding is kept per token count and the mask is the slot's
        full-width row, as in `decode`: no per-run set-up."""
        count, start = len(tokens), int(self.lengths[0])
        self.reserve(start + count)
        buffers = self._buffers
        if count not in buffers.extend_bindings:
            ids = np.zeros((1, count), dtype=np.int64)
            logits = np.empty((1, count, self.vocab), dtype=np.float32)
            positions = np.arange(count, dtype=np.int64)
            binding, guesses = self._binding(ids, buffers.mask[:1], logits, 0, 1, positions)
            buffers.extend_bindings[count] = (binding, ids, logits, positions, guesses)
        binding, ids, logits, _, guesses = buffers.extend_bindings[count]
        ids[0] = tokens
        buffers.mask[0, start : start + count] = 1
        self.session.run_with_iobinding(binding)
        self.guesses = guesses
        self.lengths[0] = start + count
        return logits[0]

    def _binding(
        self,
        ids: np.ndarray,
        mask: np.ndarray,
        logits: np.ndarray,
        first: int,
        rows: int,
        positions: np.ndarray = _LAST,
    ):
        """An IOBinding of these arrays and the cache rows [first, first + rows), and the
        arrays bound to the draft heads' outputs (None when the graph has none)."""
        binding = self.session.io_binding()
        _bind(binding.bind_input, "input_ids", ids)
        _bind(binding.bind_input, "attention_mask", mask)
        if self.picks_positions:
            _bind(binding.bind_input, LOGITS_POSITIONS, positions)
        _bind(binding.bind_output, "logits", logits)
        shape = [rows, self.kv_heads, self.capacity, self.head_dim]
        for layer in range(self.layers):
            for kind, arrays in (("key", self._buffers.keys), ("value", self._buffers.values)):
                rows_view = arrays[layer][first : first + rows]
                _bind(binding.bind_input, f"past_key_values.{layer}.{kind}", rows_view, shape)
                _bind(binding.bind_output, f"present.{layer}.{kind}", rows_view, shape)
        if not self.has_heads:
            return binding, None
        guesses = (
            np.zeros((*logits.shape[:2], 3), dtype=np.int64),
            np.zeros((*logits.shape[:2], 2), dtype=np.float32),
        )
        _bind(binding.bind_output, DRAFT_IDS, guesses[0])
        _bind(binding.bind_output, DRAFT_PROBS, guesses[1])
        return binding, guesses

    def guessed(self, row: int, position: int, chosen: int) -> list[int]:
        """The draft heads' confident guesses to check after `chosen`, from the last run's
        `row` and (logits) `position`; none without heads."""
        if self.guesses is None:
            return []
        ids, probs = self.guesses
        return guessed(ids[row, position], probs[row, position], chosen)

    def _allocate(self, capacity: int) -> _Buffers:
        shape = (self.slots, self.kv_heads, capacity, self.head_dim)
        return _Buffers(
            keys=[np.zeros(shape, dtype=np.float32) for _ in range(self.layers)],
            values=[np.zeros(shape, dtype=np.float32) for _ in range(self.layers)],
            mask=np.zeros((self.slots, capacity), dtype=np.int64),
        )


def is_gqa_graph(session) -> bool:
    """Is this the fused graph (GroupQueryAttention, positions derived from the mask)?"""
    names = {i.name for i in session.get_inputs()}
    return "past_key_values.0.key" in names and "position_ids" not in names


def _bind(bind, name: str, array: np.ndarray, shape: list[int] | None = None) -> None:
    """Bind a C-contiguous numpy array (or a leading-rows view of one) by pointer, no copy."""
    bind(name, "cpu", 0, array.dtype, list(shape or array.shape), array.ctypes.data)


def _layer_order(name: str) -> tuple[int, int]:
    _, layer, kind = name.split(".")
    return int(layer), 0 if kind == "key" else 1
