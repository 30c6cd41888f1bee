"""Choose the next token of every row of a batch, each row with its own sampling settings.

Rows with temperature 0 (or below `MIN_TEMPERATURE`, where dividing by it would overflow to
infinities and NaNs and fail the whole batch) take the most likely token; the others sample
from the tempered distribution cut to the smallest set of tokens whose probability reaches
`top_p` (nucleus sampling), with their own random generator, so a request with a `seed` gets
the same tokens whichever requests share its batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

MIN_TEMPERATURE = 1e-5
"""Below this, sampling is greedy: the distribution is one token already, numerically."""


@dataclass(frozen=True)
class RowSampling:
    temperature: float
    top_p: float
    generator: torch.Generator | None
    """None for greedy rows."""


def sample(logits: torch.Tensor, rows: list[RowSampling]) -> list[int]:
    """One token id per row of `logits` [rows, vocab]."""
    tokens = torch.from_numpy(_cpu(logits).argmax(-1)) if logits.is_cpu else logits.argmax(-1)
    sampled = [i for i, row in enumerate(rows) if row.temperature >= MIN_TEMPERATURE]
    if sampled:
        index = torch.tensor(sampled, device=logits.device)
        probs = _probabilities(logits.index_select(0, index).float(), [rows[i] for i in sampled])
        for k, i in enumerate(sampled):
            tokens[i] = torch.multinomial(probs[k], 1, generator=rows[i].generator)[0]
    return tokens.tolist()


def token_logprobs(logits: torch.Tensor, tokens: list[int]) -> list[float]:
    """Log-probability of each row's chosen token under the untempered distribution (cheap:
    one logsumexp per row), as the drift reference measures completions."""
    if logits.is_cpu:
        values = _cpu(logits)
        top = values.max(-1, keepdims=True)
        norm = top[:, 0] + np.log(np.exp(values - top).sum(-1))
        return (values[np.arange(len(tokens)), tokens] - norm).tolist()
    rows = torch.arange(len(tokens), device=logits.device)
    chosen = logits[rows, torch.tensor(tokens, device=logits.device)].float()
    return (chosen - torch.logsumexp(logits.float(), dim=-1)).tolist()


def _cpu(logits: torch.Tensor) -> np.ndarray:
    """CPU logits as numpy, for the per-step reductions over the vocabulary: numpy runs them
    on the calling thread, where torch would start a parallel region whose other thread must
    wait for a core that onnxruntime's threads or the event loop hold (measured in the server
    on 2 cores: 1.4 ms per step instead of 0.1)."""
    return logits.detach().float().numpy()


def _probabilities(logits: torch.Tensor, rows: list[RowSampling]) -> torch.Tensor:
    temperature = torch.tensor([r.temperature for r in rows], device=logits.device)
    # shift by the row maximum first: large logits over a small temperature stay finite
    shifted = logits - logits.max(dim=-1, keepdim=True).values
    probs = torch.softmax(shifted / temperature[:, None], dim=-1)
    top_p = torch.tensor([r.top_p for r in rows], device=logits.device)
    if bool((top_p < 1).any()):
        probs = _nucleus(probs, top_p)
    return probs


def _nucleus(probs: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Zero the tail of each row beyond its top_p mass (the most likely token always stays)."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    cut = mass_before >= top_p[:, None]
    cut[:, 0] = False  # even when top_p is so small it rounds to 0
    sorted_probs[cut] = 0
    return torch.zeros_like(probs).scatter_(-1, order, sorted_probs)


def make_generator(seed: int | None, device: str = "cpu") -> torch.Generator:
    """A generator seeded by the request (reproducible) or from the OS (fresh per request)."""
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator
