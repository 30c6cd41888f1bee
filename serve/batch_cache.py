"""A left-padded batch of key/value caches that sequences can join and leave at any step.

Every row holds one sequence's keys and values, right-aligned: row i's tokens occupy the last
`lengths[i]` columns and the columns before them are padding, masked out by `mask`. Aligning
on the right means one decode step appends one column for every row at once, which is what a
batched forward pass with a growing cache does (transformers' DynamicCache, ONNX `present.*`).

Joining a batch whose rows are shorter than the newcomer pads the existing rows on the left;
leaving it may free leading columns that every remaining row has as padding, which `trim`
drops, so padding never grows without bound.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

KV = list[tuple[torch.Tensor, torch.Tensor]]
"""Per layer, keys and values shaped [batch, kv_heads, length, head_dim]."""


@dataclass
class BatchCache:
    kv: KV
    mask: torch.Tensor
    """[batch, length] int64: 1 where a row has a real token, 0 for left padding."""
    positions: torch.Tensor
    """[batch] int64: the position id the next token of each row gets (its real length)."""

    @property
    def rows(self) -> int:
        return self.mask.shape[0]

    @property
    def length(self) -> int:
        return self.mask.shape[1]

    def tokens(self) -> int:
        """Cells the cache holds, padding included: what bounds its memory."""
        return self.rows * self.length

    def appended(self, kv: KV) -> BatchCache:
        """The cache after a forward pass that added one real column to every row."""
        ones = torch.ones((self.rows, 1), dtype=self.mask.dtype, device=self.mask.device)
        return BatchCache(kv, torch.cat([self.mask, ones], dim=1), self.positions + 1)

    def select(self, rows: list[int]) -> BatchCache:
        """Keep only `rows`, in that order (rows of finished sequences leave the batch)."""
        index = torch.tensor(rows, dtype=torch.long, device=self.mask.device)
        on_kv = index.to(self.kv[0][0].device) if self.kv else index  # the cache may be on a GPU
        kv = [(k.index_select(0, on_kv), v.index_select(0, on_kv)) for k, v in self.kv]
        return BatchCache(
            kv, self.mask.index_select(0, index), self.positions.index_select(0, index)
        )

    def repeat(self, times: int) -> BatchCache:
        """Each row repeated `times` times (several choices sharing one prefilled prompt)."""
        if times == 1:
            return self
        kv = [(k.repeat_interleave(times, 0), v.repeat_interleave(times, 0)) for k, v in self.kv]
        return BatchCache(
            kv, self.mask.repeat_interleave(times, 0), self.positions.repeat_interleave(times, 0)
        )

    def padded_to(self, length: int) -> BatchCache:
        """The same rows with `length - self.length` padding columns added on the left."""
        extra = length - self.length
        if extra <= 0:
            return self
        kv = [(_pad_left(k, extra), _pad_left(v, extra)) for k, v in self.kv]
        pad = torch.zeros((self.rows, extra), dtype=self.mask.dtype, device=self.mask.device)
        return BatchCache(kv, torch.cat([pad, self.mask], dim=1), self.positions)

    def trim(self) -> BatchCache:
        """Drop leading columns that are padding in every row."""
        if self.rows == 0:
            return self
        real_columns = self.mask.any(dim=0).nonzero()
        first = int(real_columns[0]) if len(real_columns) else self.length
        if first == 0:
            return self
        kv = [(k[:, :, first:].contiguous(), v[:, :, first:].contiguous()) for k, v in self.kv]
        return BatchCache(kv, self.mask[:, first:], self.positions)


def concat(first: BatchCache | None, second: BatchCache) -> BatchCache:
    """One batch holding the rows of `first` then those of `second`, right-aligned."""
    if first is None or first.rows == 0:
        return second
    length = max(first.length, second.length)
    a, b = first.padded_to(length), second.padded_to(length)
    kv = [
        (torch.cat([ka, kb]), torch.cat([va, vb]))
        for (ka, va), (kb, vb) in zip(a.kv, b.kv, strict=True)
    ]
    return BatchCache(kv, torch.cat([a.mask, b.mask]), torch.cat([a.positions, b.positions]))


def _pad_left(tensor: torch.Tensor, extra: int) -> torch.Tensor:
    shape = list(tensor.shape)
    shape[2] = extra
    return torch.cat([tensor.new_zeros(shape), tensor], dim=2)
