"""FAVOR+ positive random features for the softmax kernel."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["orthogonal_gaussian", "positive_features", "feature_exponents", "graph_shifted_features"]


def orthogonal_gaussian(
    heads: int,
    num_features: int,
    dim: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    r"""Draw norm-rescaled orthogonal Gaussian projections, one matrix per head.

    Rows come in blocks of ``dim`` mutually orthogonal directions (QR of a Gaussian matrix);
    each row is rescaled by the norm of an independent Gaussian vector, so every row is
    marginally :math:`\mathcal{N}(0, I)` while rows within a block are exactly orthogonal.

    Args:
        heads: number of independent matrices.
        num_features: rows per matrix (``m``).
        dim: input dimension.
        generator: optional random generator, for reproducible draws.
        dtype: floating dtype of the result.
        device: device of the result.

    Returns:
        Tensor of shape ``[heads, num_features, dim]``.

    Example:
        >>> import torch
        >>> w = orthogonal_gaussian(2, 5, 3, generator=torch.Generator().manual_seed(0))
        >>> w.shape
        torch.Size([2, 5, 3])
    """
    if heads < 1 or num_features < 1 or dim < 1:
        raise ValueError(
            f"heads, num_features and dim must be positive, got {heads}, {num_features}, {dim}"
        )
    blocks = math.ceil(num_features / dim)
    gauss = torch.randn(heads * blocks, dim, dim, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(gauss)
    # sign fix: without it Q is not Haar-distributed and the features are biased
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    rows = q.transpose(-1, -2).reshape(heads, blocks * dim, dim)[:, :num_features]
    norms = torch.randn(heads, num_features, dim, generator=generator, dtype=torch.float64)
    rows = rows * norms.norm(dim=-1, keepdim=True)
    return rows.to(dtype=dtype, device=device)


def positive_features(
    x: Tensor,
    projection: Tensor,
    *,
    index: Tensor | None = None,
    num_segments: int | None = None,
    shift: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    r"""Positive random features of the softmax kernel (FAVOR+).

    .. math::
        \phi(x) = \frac{1}{\sqrt{m}} \exp\!\big(W x - \tfrac{1}{2}\lVert x\rVert^2 - c\big),
        \qquad \mathbb{E}_W[\phi(x)^\top \phi(y)] = e^{x^\top y - c_x - c_y}.

    The shift ``c`` keeps the exponent at or below zero. It is returned so callers can undo it;
    in normalised attention it cancels between numerator and denominator as long as it is
    constant across what is summed: per query row, or per graph for keys.

    Args:
        x: inputs, ``[N, heads, dim]``.
        projection: ``[heads, m, dim]`` from :func:`orthogonal_gaussian`.
        index: optional segment id per row (``[N]``, long); the shift is then the maximum
            over each segment (keys of one graph) instead of over each row (queries).
        num_segments: number of segments when ``index`` is given.
        shift: a fixed shift, broadcastable to ``[N, heads, 1]``, used instead of a
            data-dependent maximum.

    Returns:
        ``(features [N, heads, m], shift [N, heads, 1])``; the shift is detached.
    """
    _check_shapes(x, projection)
    exponent = torch.einsum("nhd,hmd->nhm", x, projection.to(x.dtype))
    exponent = exponent - 0.5 * x.pow(2).sum(dim=-1, keepdim=True)
    if shift is not None:
        stabilizer = shift.to(exponent.dtype).expand(*exponent.shape[:2], 1)
    else:
        stabilizer = exponent.detach().amax(dim=-1, keepdim=True)
    if index is not None and shift is None:
        size = int(index.max()) + 1 if num_segments is None else num_segments
        seg = stabilizer.new_full((size, *stabilizer.shape[1:]), -torch.inf)
        seg = seg.scatter_reduce(
            0, index.view(-1, 1, 1).expand_as(stabilizer), stabilizer, reduce="amax"
        )
        stabilizer = seg[index]
    features = torch.exp(exponent - (stabilizer + 0.5 * math.log(projection.shape[1])))
    return features, stabilizer


def feature_exponents(x: Tensor, projection: Tensor) -> Tensor:
    r"""Exponents of the positive random features, :math:`W x - \tfrac12\lVert x\rVert^2 - \tfrac12\log m`.

    :math:`\phi(x) = e^{\text{exponent}}`, before any shift. Working with exponents lets
    callers choose shifts that can neither overflow nor underflow a whole row.

    Args:
        x: inputs, ``[N, heads, dim]``.
        projection: ``[heads, m, dim]``.

    Returns:
        ``[N, heads, m]``.
    """
    _check_shapes(x, projection)
    exponent = torch.einsum("nhd,hmd->nhm", x, projection.to(x.dtype))
    return exponent - (0.5 * x.pow(2).sum(dim=-1, keepdim=True) + 0.5 * math.log(projection.shape[1]))


def graph_shifted_features(
    q_exponent: Tensor, k_exponent: Tensor, batch: Tensor, num_graphs: int
) -> tuple[Tensor, Tensor, Tensor]:
    r"""Query and key features with a per-graph, per-feature key shift that cannot underflow a row.

    With :math:`M_{gm} = \max_{j\in g} e^K_{jm}` and
    :math:`T_i = \max_m (e^Q_{im} + M_{g(i)m})`,

    .. math::
        \phi_K(j)_m = e^{e^K_{jm} - M_{g(j)m}}, \qquad
        \phi_Q(i)_m = e^{e^Q_{im} + M_{g(i)m} - T_i},

    so :math:`\phi_Q(i)\cdot\phi_K(j) = e^{-T_i}\,\hat K_{ij}` for ``j`` in ``i``'s graph: a
    shift constant per query row (it cancels in normalised attention). No entry exceeds 1, and
    for every row the feature attaining :math:`T_i` meets a key whose entry is exactly 1, so
    :math:`\sum_{j\in g}\phi_Q(i)\cdot\phi_K(j) \ge 1`: no row of the normaliser is zero,
    however large the keys.

    Returns:
        ``(phi_q, phi_k, row_shift)``: ``[N, H, m]``, ``[N, H, m]`` and :math:`T_i`, ``[N, H, 1]``
        (detached).
    """
    k_detached = k_exponent.detach()
    seg = k_detached.new_full((num_graphs, *k_detached.shape[1:]), -torch.inf)
    seg = seg.scatter_reduce(0, batch.view(-1, 1, 1).expand_as(k_detached), k_detached, reduce="amax")
    peak = seg[batch]
    row = (q_exponent.detach() + peak).amax(dim=-1, keepdim=True)
    return torch.exp(q_exponent + peak - row), torch.exp(k_exponent - peak), row


def _check_shapes(x: Tensor, projection: Tensor) -> None:
    if x.dim() != 3 or projection.dim() != 3:
        raise ValueError(
            f"x must be [N, heads, dim] and projection [heads, m, dim], "
            f"got {tuple(x.shape)} and {tuple(projection.shape)}"
        )
    if x.shape[1:] != (projection.shape[0], projection.shape[2]):
        raise ValueError(
            f"x {tuple(x.shape)} does not match projection {tuple(projection.shape)}: "
            f"expected x[:, {projection.shape[0]}, {projection.shape[2]}]"
        )
