"""The forward passes of a fused (GroupQueryAttention) ONNX variant, over a slot KV cache.

Same interface as `BatchRunner`, different cache: the fused graph takes no left padding, so
every sequence lives left-aligned in a slot of `optimize.kv_slots.KVSlots` (one preallocated
buffer per layer, appended in place by the operator). The running sequences sit in slots
0..B-1, in the order of `self.rows`, so one decode run covers them all; a job whose prompt is
still being prefilled holds a slot above them. Joining copies a prompt's cache into the next
free running slot(s); leaving moves the last running row into the hole, so the rows stay
packed and no step copies more than the few sequences that joined or left.

The cache has one slot more than the batch has rows. When the batch is full, every slot but
the running ones holds a partial prompt, and the running slot a prompt joins into may be held
by another prompt: that one steps aside into the spare slot (without it the two would have
to swap places).

Prompt prefix cache: the last slot keeps the cache of the latest prompt (with its answer once
it has finished, if no other prompt came since and it asked for one choice). A new prompt that
starts with the same tokens (the chat template's system prompt, or the earlier turns of a
conversation) copies those columns into its own slot and prefills only the rest: a copy of
~46 KB per token for SmolLM2-135M, against a forward pass per token. Keys and values of a
prefix depend only on the prefix (causal attention), so the result is the same as a full
prefill. One entry, like llama-server's per-slot prompt reuse but shared by all slots.

Speculation: while a single sequence runs (where a pass is bound by reading the weights, not
by computing), `draft` proposes tokens from the variant's draft table (`optimize.ngram_draft`)
and the guesses its graph's draft heads made at the position that chose the sequence's last
token (kept on the sequence after every pass), and `extend` runs the last token plus the
drafted ones in one pass; the scheduler keeps what the model agrees with and `keep_drafted`
drops the cache columns of the rest.
"""

from __future__ import annotations

import numpy as np
import torch

from tuneloop.optimize.draft_heads import guessed
from tuneloop.optimize.ngram_draft import DRAFT_TOKENS
from tuneloop.serve.jobs import Job, Sequence


class SlotRunner:
    def __init__(self, backend, max_rows: int, prefix_cache: bool = True, drafts=None) -> None:
        from tuneloop.optimize.kv_slots import KVSlots

        self.backend = backend
        self.max_rows = max_rows
        self.cache = KVSlots(backend.session, max_rows + 2)  # + the spare and the prefix slots
        self.rows: list[Sequence] = []
        self._pending: dict[int, int] = {}
        """id(job) -> slot holding the job's partial prompt."""
        self._prefix_slot = self.cache.slots - 1
        self._prefix: tuple[int, ...] = ()
        """The prompt whose cache the prefix slot holds."""
        self.prefix_cache = prefix_cache
        self.drafts = drafts
        """An `NgramDraft` to speculate with, or None."""
        self._guessing = drafts is not None and self.cache.has_heads
        """Keep the draft heads' guesses on each sequence after every pass."""
        self._fed_before_extend = 0

    @property
    def cache_cells(self) -> int:
        """Token cells the slots hold (what bounds the runner's memory)."""
        return self.cache.slots * self.cache.capacity

    def reuse_prefix(self, job: Job) -> int:
        """Give a job about to be prefilled its slot, holding the longest prefix of its prompt
        that the prefix cache has; the number of prompt tokens it need not compute."""
        slot = self._pending[id(job)] = self._free_slot()
        self.cache.clear(slot)
        if not self.prefix_cache:
            return 0
        # At least the prompt's last token is computed: its logits give the first new token.
        shared = _common_prefix(self._prefix, job.prompt, limit=len(job.prompt) - 1)
        if shared:
            self.cache.move(self._prefix_slot, slot, count=shared)
        return shared

    def prefill(self, chunks: list[tuple[Job, list[int]]]) -> torch.Tensor:
        """Run each job's next prompt chunk in the slot `reuse_prefix` gave it; the logits
        after each chunk."""
        logits = []
        for job, tokens in chunks:
            slot = self._pending[id(job)]
            logits.append(torch.from_numpy(self.cache.prefill(slot, tokens).copy()))
            if self._guessing:  # the last chunk's guesses are the ones the first token uses
                guess = _copied(self.cache.guesses, 0, -1)
                for seq in job.sequences:
                    seq.guess = guess
        return torch.stack(logits)

    def join(self, job: Job, sequences: list[Sequence]) -> None:
        """Copy a prefilled prompt into the next running slot(s), one per continuing choice."""
        slot = self._pending.pop(id(job))
        if self.prefix_cache and job.prompt != self._prefix:
            self.cache.move(slot, self._prefix_slot)
            self._prefix = job.prompt
        for seq in sequences:
            target = len(self.rows)
            self._vacate(target, keep=slot)
            self.cache.move(slot, target)
            self.rows.append(seq)
        if slot >= len(self.rows):
            self.cache.clear(slot)

    def discard(self, job: Job) -> None:
        """Forget a job's partial prompt (cancelled while prefilling)."""
        slot = self._pending.pop(id(job), None)
        if slot is not None:
            self.cache.clear(slot)

    def decode(self) -> torch.Tensor:
        """One token for every running row: the logits [rows, vocab] for the next token."""
        tokens = np.fromiter((seq.last_token for seq in self.rows), dtype=np.int64)
        logits = torch.from_numpy(self.cache.decode(tokens).copy())
        if self._guessing:
            ids, probs = (array[:, 0].copy() for array in self.cache.guesses)
            for row, seq in enumerate(self.rows):
                seq.guess = (ids[row], probs[row])
        return logits

    def draft(self, seq: Sequence) -> list[int]:
        """Tokens to check after the sequence's last one, when it runs alone and the variant
        has a draft table; never more than its token budget can take after the pass's own."""
        if self.drafts is None or len(self.rows) != 1:
            return []
        room = seq.job.request.params.max_tokens - len(seq.token_ids) - 1
        guesses = guessed(*seq.guess, seq.last_token) if seq.guess is not None else ()
        context = seq.job.prompt + tuple(seq.token_ids)
        return self.drafts.propose(context, min(DRAFT_TOKENS, room), guesses)

    def extend(self, draft: list[int]) -> torch.Tensor:
        """Feed the single running sequence's last token and `draft` in one pass: the logits
        after each of them [len(draft) + 1, vocab]."""
        self._fed_before_extend = int(self.cache.lengths[0])
        tokens = [self.rows[0].last_token, *draft]
        return torch.from_numpy(self.cache.extend(tokens).copy())

    def keep_drafted(self, kept: int) -> None:
        """After `extend`: keep the last token and the first `kept` drafted tokens."""
        self.cache.truncate(0, self._fed_before_extend + 1 + kept)
        if self._guessing:
            self.rows[0].guess = _copied(self.cache.guesses, 0, kept)

    def release(self, leaving: set[Sequence]) -> None:
        """Remove finished sequences, moving the last running rows into their slots."""
        row = 0
        while row < len(self.rows):
            if self.rows[row] not in leaving:
                row += 1
                continue
            self._remember(row, self.rows[row])
            last = len(self.rows) - 1
            self.cache.move(last, row)
            self.cache.clear(last)
            self.rows[row] = self.rows[last]
            self.rows.pop()

    def _remember(self, slot: int, seq: Sequence) -> None:
        """Extend the prefix cache with a finished single-choice answer (the tokens fed back
        so far) when it still holds that answer's prompt: a chat's next turn starts with all
        of it. A prompt that joined since is newer and stays."""
        if not self.prefix_cache or len(seq.job.sequences) != 1 or self._prefix != seq.job.prompt:
            return
        fed = int(self.cache.lengths[slot]) - len(seq.job.prompt)
        if fed > 0:
            self.cache.move(slot, self._prefix_slot)
            self._prefix = seq.job.prompt + tuple(seq.token_ids[:fed])

    def reset(self) -> None:
        """Forget every cache (after a failed forward pass, the cache can't be trusted)."""
        for slot in range(self.cache.slots):
            self.cache.clear(slot)
        self.rows, self._pending, self._prefix = [], {}, ()

    def _free_slot(self) -> int:
        """The highest slot nobody holds (running rows grow from slot 0 upwards)."""
        held = set(self._pending.values())
        for slot in range(self._prefix_slot - 1, len(self.rows) - 1, -1):
            if slot not in held:
                return slot
        raise RuntimeError("no free KV slot: the scheduler admitted more rows than slots")

    def _vacate(self, slot: int, keep: int) -> None:
        """Move the partial prompt in `slot` (if any, and not `keep`) to another free slot."""
        for job_id, held in self._pending.items():
            if held == slot and held != keep:
                target = self._free_slot_except({slot, keep})
                self.cache.move(slot, target)
                self._pending[job_id] = target
                return

    def _free_slot_except(self, taken: set[int]) -> int:
        held = set(self._pending.values()) | taken
        for slot in range(self._prefix_slot - 1, len(self.rows), -1):
            if slot not in held:
                return slot
        raise RuntimeError("no free KV slot: the scheduler admitted more rows than slots")


def _copied(guesses: tuple[np.ndarray, np.ndarray], row: int, position: int) -> tuple:
    """One position's draft-head output, copied out of the arrays the next run overwrites."""
    return tuple(array[row, position].copy() for array in guesses)


def _common_prefix(a: tuple[int, ...], b: tuple[int, ...], limit: int) -> int:
    """Length of the common prefix of two token sequences, at most `limit`."""
    length = 0
    for x, y in zip(a[:limit], b[:limit], strict=False):
        if x != y:
            break
        length += 1
    return length
