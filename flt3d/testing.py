"""Invariance and equivariance checks for layers and models on flat point-cloud batches.

Each helper takes ``fn(x, pos, batch) -> Tensor`` (node-level output, ``[N, ...]``, unless
stated) and raises ``AssertionError`` with the largest deviation when the property fails. They
work for any PyG-style layer, so users can check their own models built on flt3d.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "random_rotation",
    "assert_translation_invariant",
    "assert_rotation_invariant",
    "assert_permutation_equivariant",
    "assert_batch_independent",
]

Layer = Callable[[Tensor, Tensor, Tensor], Tensor]


def _close(a: Tensor, b: Tensor, what: str, rtol: float, atol: float) -> None:
    if a.shape != b.shape:
        raise AssertionError(f"{what}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
    if not torch.allclose(a, b, rtol=rtol, atol=atol):
        err = (a - b).abs().max().item()
        raise AssertionError(f"{what}: max deviation {err:.3e} (rtol={rtol}, atol={atol})")


def random_rotation(
    *, dtype: torch.dtype = torch.float64, generator: torch.Generator | None = None
) -> Tensor:
    """A uniformly random proper rotation matrix ``[3, 3]`` (Haar measure on SO(3)).

    Uses a random unit quaternion; e3nn's ``o3.rand_matrix`` draws from the same law.
    """
    q = torch.randn(4, generator=generator, dtype=torch.float64)
    w, x, y, z = q / q.norm()
    rot = torch.stack(
        [
            torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)]),
            torch.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)]),
            torch.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]),
        ]
    )
    return rot.to(dtype)


def assert_translation_invariant(
    fn: Layer,
    x: Tensor,
    pos: Tensor,
    batch: Tensor,
    *,
    shift: float = 100.0,
    rtol: float = 1e-7,
    atol: float = 1e-9,
) -> None:
    """Check ``fn(x, pos + t_g, batch) == fn(x, pos, batch)`` for a different ``t_g`` per graph."""
    num_graphs = int(batch.max()) + 1
    gen = torch.Generator().manual_seed(0)
    t = (torch.rand(num_graphs, pos.shape[1], generator=gen, dtype=pos.dtype) - 0.5) * 2 * shift
    _close(fn(x, pos + t[batch], batch), fn(x, pos, batch), "translation", rtol, atol)


def assert_rotation_invariant(
    fn: Layer,
    x: Tensor,
    pos: Tensor,
    batch: Tensor,
    *,
    rtol: float = 1e-7,
    atol: float = 1e-9,
) -> None:
    """Check ``fn(x, pos R^T, batch) == fn(x, pos, batch)`` for a random rotation ``R``."""
    rot = random_rotation(dtype=pos.dtype, generator=torch.Generator().manual_seed(0))
    _close(fn(x, pos @ rot.T, batch), fn(x, pos, batch), "rotation", rtol, atol)


def assert_permutation_equivariant(
    fn: Layer,
    x: Tensor,
    pos: Tensor,
    batch: Tensor,
    *,
    rtol: float = 1e-7,
    atol: float = 1e-9,
) -> None:
    """Check ``fn(x[p], pos[p], batch[p]) == fn(x, pos, batch)[p]`` for a random permutation.

    The permutation mixes nodes across graphs, so the permuted batch vector is unsorted.
    """
    p = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))
    _close(fn(x[p], pos[p], batch[p]), fn(x, pos, batch)[p], "permutation", rtol, atol)


def assert_batch_independent(
    fn: Layer,
    x: Tensor,
    pos: Tensor,
    batch: Tensor,
    *,
    rtol: float = 1e-7,
    atol: float = 1e-9,
) -> None:
    """Check that each graph's output equals the output of that graph run alone."""
    out = fn(x, pos, batch)
    for g in range(int(batch.max()) + 1):
        sel = batch == g
        alone = fn(x[sel], pos[sel], torch.zeros(int(sel.sum()), dtype=torch.long))
        _close(out[sel], alone, f"batch independence (graph {g})", rtol, atol)
