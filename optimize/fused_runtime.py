"""The fused graph (onnxruntime-genai's builder, GroupQueryAttention) behind `runtime.CausalLM`.

Generation uses the slot cache of `kv_slots`: 1) each prompt is prefilled into its own slot
(prompts of any lengths, no padding), 2) every step decodes all rows in one run with the cache
shared in place, 3) it stops when every row has ended. Teacher-forced logits prefill one slot
and keep every position's logits.

A single prompt with a draft table in its folder (`ngram_draft`) or draft heads in its graph
(`draft_heads`) decodes speculatively: each pass feeds the last token plus up to
`draft_tokens` drafted ones, keeps the drafted tokens while they equal the pass's own greedy
choice, and drops the cache columns of the rest; the heads' guesses at the last kept position
draft for the next pass. An
fp32 variant gives the same tokens as one token per pass; int8 kernels round a pass over
several tokens slightly differently, so an int8 answer can differ after a near tie.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from tuneloop.optimize.kv_slots import KVSlots
from tuneloop.optimize.ngram_draft import DRAFT_TOKENS, variant_drafts
from tuneloop.optimize.runtime import CausalLM, Generation


class FusedCausalLM(CausalLM):
    backend = "onnx"

    def __init__(self, folder: Path, tokenizer, session) -> None:
        super().__init__(folder, tokenizer)
        self.session = session
        self._slots: KVSlots | None = None
        self.draft = variant_drafts(folder, session)
        self.speculate = True
        """Decode a single prompt speculatively when there are drafts (a table, heads)."""
        self.draft_tokens = DRAFT_TOKENS

    def slots(self, count: int) -> KVSlots:
        """A slot cache with at least `count` empty slots."""
        if self._slots is None or self._slots.slots < count:
            self._slots = KVSlots(self.session, count)
        for slot in range(count):
            self._slots.clear(slot)
        return self._slots

    def sequence_logits(self, ids: list[int]) -> np.ndarray:
        return self.slots(1).prefill(0, list(ids), all_logits=True)

    def generate(
        self, prompts: list[list[int]], max_new_tokens: int, stop_at_eos: bool = True
    ) -> Generation:
        if self.speculate and self.draft is not None and len(prompts) == 1:
            return self._generate_drafted(list(prompts[0]), max_new_tokens, stop_at_eos)
        cache = self.slots(len(prompts))
        cache.reserve(max(len(p) for p in prompts) + max_new_tokens)
        # 1) prefill every prompt into its own slot
        started = time.perf_counter()
        next_ids = np.array(
            [int(cache.prefill(row, list(p)).argmax()) for row, p in enumerate(prompts)]
        )
        prefill = time.perf_counter() - started
        # 2) decode every row together
        tokens: list[list[int]] = [[] for _ in prompts]
        done = np.zeros(len(prompts), dtype=bool)
        steps, started = 0, time.perf_counter()
        while True:
            for row, token in enumerate(next_ids):
                if not done[row]:
                    tokens[row].append(int(token))
                    done[row] = stop_at_eos and int(token) in self.eos_ids
            # 3) stop when every sequence has ended or the budget is spent
            if done.all() or len(max(tokens, key=len)) >= max_new_tokens:
                break
            next_ids = cache.decode(np.where(done, self.pad_id, next_ids)).argmax(-1)
            steps += 1
        decode = time.perf_counter() - started
        return Generation(tokens, sum(len(p) for p in prompts), prefill, decode, steps)

    def _generate_drafted(self, prompt: list[int], max_new_tokens: int, stop_at_eos: bool):
        """Greedy decoding of one prompt, checking drafted tokens in the same pass."""
        cache = self.slots(1)
        cache.reserve(len(prompt) + max_new_tokens + self.draft_tokens)
        started = time.perf_counter()
        tokens = [int(cache.prefill(0, prompt).argmax())]
        guesses = cache.guessed(0, -1, tokens[-1])
        prefill = time.perf_counter() - started
        ended = lambda token: stop_at_eos and token in self.eos_ids  # noqa: E731
        steps = drafted = accepted = 0
        started = time.perf_counter()
        while not ended(tokens[-1]) and len(tokens) < max_new_tokens:
            # Drafts past the budget would be wasted work: the pass itself adds one token.
            room = min(self.draft_tokens, max_new_tokens - len(tokens) - 1)
            draft = self.draft.propose(prompt + tokens, room, guesses)
            fed = int(cache.lengths[0])
            if draft:
                choices = cache.extend([tokens[-1], *draft]).argmax(-1)
            else:
                choices = cache.decode(np.array([tokens[-1]])).argmax(-1)
            kept = 0
            for choice in choices.tolist():
                tokens.append(int(choice))
                if kept == len(draft) or choice != draft[kept] or ended(choice):
                    break
                kept += 1
            # The cache holds the fed token and the drafted tokens that were kept.
            cache.truncate(0, fed + 1 + kept)
            guesses = cache.guessed(0, kept, tokens[-1])
            steps, drafted, accepted = steps + 1, drafted + len(draft), accepted + kept
        decode = time.perf_counter() - started
        return Generation(
            [tokens], len(prompt), prefill, decode, steps, len(tokens) - 1, drafted, accepted
        )
