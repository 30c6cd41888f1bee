"""The forward passes of one model: prompt prefill in chunks, then one batched decode per step.

The runner owns the KV caches: one `BatchCache` whose rows are the running sequences (in the
order of `self.rows`), and one partial cache per job whose prompt is still being prefilled.
Sequences join the batch when their prompt is done and leave it when they finish; nothing
else in the engine touches tensors of the cache.

With `pool_prompts` on (drift monitoring) and a backend that has `forward_pooled`, prefill
also sums each prompt's last hidden states, chunk by chunk; the mean lands in the job's
record as its prompt embedding when the prompt is done.
"""

from __future__ import annotations

import torch

from tuneloop.serve.backends.base import ForwardInput, ModelBackend
from tuneloop.serve.batch_cache import BatchCache, concat
from tuneloop.serve.jobs import Job, Sequence


class BatchRunner:
    def __init__(self, backend: ModelBackend, *, pool_prompts: bool = False) -> None:
        self.backend = backend
        self.rows: list[Sequence] = []
        self._batch: BatchCache | None = None
        self._pending: dict[int, BatchCache] = {}
        self.pool_prompts = pool_prompts and getattr(backend, "can_pool_prompts", False)
        self._pooled: dict[int, torch.Tensor] = {}
        """Per prefilling job, the sum of its prompt's last hidden states so far."""

    @property
    def cache_cells(self) -> int:
        """Cells held by all caches, padding included (what bounds the runner's memory)."""
        cells = self._batch.tokens() if self._batch else 0
        return cells + sum(c.tokens() for c in self._pending.values())

    def reuse_prefix(self, job: Job) -> int:  # noqa: ARG002
        """Prompt tokens of `job` served from a prefix cache: none here (per-adapter rows)."""
        return 0

    def draft(self, seq: Sequence) -> list[int]:  # noqa: ARG002
        """Tokens to check after a sequence's last one: none here (no draft table)."""
        return []

    def prefill(self, chunks: list[tuple[Job, list[int]]]) -> torch.Tensor:
        """Run each job's next prompt chunk; return the logits after each chunk [chunks, vocab].

        Jobs starting their prompt share one left-padded forward pass; a job continuing a
        long prompt extends its own partial cache.
        """
        fresh = [i for i, (job, _) in enumerate(chunks) if id(job) not in self._pending]
        logits: list[torch.Tensor | None] = [None] * len(chunks)
        if fresh:
            fresh_logits = self._prefill_fresh([chunks[i] for i in fresh])
            for k, i in enumerate(fresh):
                logits[i] = fresh_logits[k]
        for i, (job, tokens) in enumerate(chunks):
            if logits[i] is None:
                logits[i] = self._prefill_continue(job, tokens)[0]
        return torch.stack(logits)

    def join(self, job: Job, sequences: list[Sequence]) -> None:
        """Move a prefilled job's cache into the batch, one row per continuing sequence."""
        cache = self._pending.pop(id(job))
        pooled = self._pooled.pop(id(job), None)
        if pooled is not None:
            job.record.prompt_embedding = (pooled / len(job.prompt)).numpy()
        if sequences:
            self._batch = concat(self._batch, cache.repeat(len(sequences)))
            self.rows.extend(sequences)

    def discard(self, job: Job) -> None:
        """Forget a job's partial prompt cache (cancelled while prefilling)."""
        self._pending.pop(id(job), None)
        self._pooled.pop(id(job), None)

    def decode(self) -> torch.Tensor:
        """One token for every running row: the logits [rows, vocab] for the next token."""
        batch = self._batch
        ones = torch.ones((batch.rows, 1), dtype=batch.mask.dtype)
        tokens = torch.tensor([[seq.last_token] for seq in self.rows], dtype=torch.long)
        logits, kv = self.backend.forward(
            ForwardInput(
                input_ids=tokens,
                attention_mask=torch.cat([batch.mask, ones], dim=1),
                position_ids=batch.positions[:, None],
                past=batch.kv,
                adapters=_adapters(self.rows),
            )
        )
        self._batch = batch.appended(kv)
        return logits

    def release(self, leaving: set[Sequence]) -> None:
        """Remove finished sequences from the batch and drop padding nobody needs any more."""
        keep = [i for i, seq in enumerate(self.rows) if seq not in leaving]
        if len(keep) == len(self.rows):
            return
        self.rows = [self.rows[i] for i in keep]
        self._batch = self._batch.select(keep).trim() if keep else None

    def reset(self) -> None:
        """Forget every cache (after a failed forward pass, the caches can't be trusted)."""
        self.rows, self._batch, self._pending, self._pooled = [], None, {}, {}

    def _prefill_fresh(self, chunks: list[tuple[Job, list[int]]]) -> torch.Tensor:
        width = max(len(tokens) for _, tokens in chunks)
        input_ids = torch.zeros((len(chunks), width), dtype=torch.long)
        mask = torch.zeros((len(chunks), width), dtype=torch.long)
        for row, (_, tokens) in enumerate(chunks):
            input_ids[row, width - len(tokens) :] = torch.tensor(tokens, dtype=torch.long)
            mask[row, width - len(tokens) :] = 1
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        jobs = [job for job, _ in chunks]
        logits, kv = self._forward(
            ForwardInput(input_ids, mask, positions, None, _adapters(jobs)), jobs
        )
        batch = BatchCache(kv, mask, mask.sum(dim=1))
        for row, (job, _) in enumerate(chunks):
            self._pending[id(job)] = batch.select([row]).trim() if len(chunks) > 1 else batch
        return logits

    def _prefill_continue(self, job: Job, tokens: list[int]) -> torch.Tensor:
        cache = self._pending[id(job)]
        new = torch.tensor([tokens], dtype=torch.long)
        ones = torch.ones_like(new)
        positions = cache.positions[:, None] + torch.arange(len(tokens))[None, :]
        logits, kv = self._forward(
            ForwardInput(
                new,
                torch.cat([cache.mask, ones], dim=1),
                positions,
                cache.kv,
                _adapters([job]),
            ),
            [job],
        )
        self._pending[id(job)] = BatchCache(
            kv, torch.cat([cache.mask, ones], dim=1), cache.positions + len(tokens)
        )
        return logits

    def _forward(self, batch: ForwardInput, jobs: list[Job]) -> tuple[torch.Tensor, object]:
        """A prefill forward pass; adds each row's hidden-state sum to its job's when pooling."""
        if not self.pool_prompts:
            return self.backend.forward(batch)
        logits, kv, pooled = self.backend.forward_pooled(batch)
        for row, job in enumerate(jobs):
            previous = self._pooled.get(id(job))
            self._pooled[id(job)] = pooled[row] if previous is None else previous + pooled[row]
        return logits, kv


def _adapters(items) -> list[str | None] | None:
    names = [item.request.adapter if isinstance(item, Job) else item.adapter for item in items]
    return names if any(names) else None
