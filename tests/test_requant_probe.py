"""The 4-bit layouts of the re-quantization probe (bench/requant_probe.py)."""

import torch

from tuneloop.bench.requant_probe import fake_quantize


def q4_1_weights(rows=4, cols=64, seed=0):
    """Weights that lie exactly on a Q4_1 grid: per block of 32, minimum + scale * level."""
    g = torch.Generator().manual_seed(seed)
    levels = torch.randint(0, 16, (rows, cols // 32, 32), generator=g).float()
    levels[..., 0], levels[..., 1] = 0, 15  # every block spans its whole grid
    scale = torch.rand(rows, cols // 32, 1, generator=g) * 0.01 + 0.001
    minimum = -torch.rand(rows, cols // 32, 1, generator=g) * 0.05 - 0.001
    return (minimum + scale * levels).reshape(rows, cols)


def test_float_minimum_reproduces_a_q4_1_grid_and_rounds_small_deltas_away():
    base = q4_1_weights()
    assert torch.allclose(fake_quantize(base, "float-minimum"), base, atol=1e-6)
    blocks = base.reshape(4, 2, 32)
    inside = (blocks > blocks.amin(-1, keepdim=True)) & (blocks < blocks.amax(-1, keepdim=True))
    delta = (inside * 1e-5).reshape(4, 64)  # a fine-tune's small step; each block keeps its range
    assert torch.allclose(fake_quantize(base + delta, "float-minimum"), base, atol=1e-6)


def test_integer_zero_point_moves_a_q4_1_grid():
    base = q4_1_weights()
    error = (fake_quantize(base, "integer-zero-point") - base).abs().max()
    assert error > 1e-4
    blocks = base.reshape(4, 2, 32)
    steps = (blocks.amax(-1).clamp(min=0) - blocks.amin(-1).clamp(max=0)) / 15
    assert error <= steps.max() / 2 + 1e-6  # still round-to-nearest on its own grid
