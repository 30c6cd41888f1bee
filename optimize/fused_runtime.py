"""The fused graph (onnxruntime-genai's builder, GroupQueryAttention) behind `runtime.CausalLM`.

Generation uses the slot cache of `kv_slots`: 1) each prompt is prefilled into its own slot
(prompts of any lengths, no padding), 2) every step decodes all rows in one run with the cache
shared in place, 3) it stops when every row has ended. Teacher-forced logits prefill one slot
and keep every position's logits.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from tuneloop.optimize.kv_slots import KVSlots
from tuneloop.optimize.runtime import CausalLM, Generation


class FusedCausalLM(CausalLM):
    backend = "onnx"

    def __init__(self, folder: Path, tokenizer, session) -> None:
        super().__init__(folder, tokenizer)
        self.session = session
        self._slots: KVSlots | None = None

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
