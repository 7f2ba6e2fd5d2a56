"""Positive random features of the softmax kernel: FAVOR+ and its per-graph shrunk form."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from flt3d.nn.graph import dense_batch, graph_sizes

__all__ = [
    "orthogonal_gaussian",
    "positive_features",
    "feature_exponents",
    "graph_pair_moments",
    "shrunk_exponents",
    "graph_shifted_features",
]


def orthogonal_gaussian(
    heads: int,
    num_features: int,
    dim: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    antithetic: bool = False,
) -> Tensor:
    r"""Draw norm-rescaled orthogonal Gaussian projections, one matrix per head.

    Rows come in blocks of ``dim`` mutually orthogonal directions (QR of a Gaussian matrix);
    each row is rescaled by the norm of an independent Gaussian vector, so every row is
    marginally :math:`\mathcal{N}(0, I)` while rows within a block are exactly orthogonal.
    With ``antithetic`` (and an even ``num_features``) the second half of the rows is the
    first half negated: still marginally Gaussian, and the estimate of
    :math:`e^{x\cdot y}` then averages :math:`\cosh` rather than :math:`\exp` of each
    projection, which lowers its variance.

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
    if antithetic and num_features % 2 == 0:
        half = orthogonal_gaussian(
            heads, num_features // 2, dim, generator=generator, dtype=dtype, device=device
        )
        return torch.cat([half, -half], dim=1)
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
    r"""Exponents of FAVOR+ positive random features of the softmax kernel, before any shift.

    .. math::
        \log\phi(x)_m = w_m\cdot x - \tfrac12\lVert x\rVert^2 - \tfrac12\log m,
        \qquad \mathbb E_w[\phi(x)\cdot\phi(y)] = e^{x\cdot y}.

    :func:`shrunk_exponents` is the same estimate with the projections shrunk by a matrix
    fitted to each graph (lower variance). Working with exponents lets callers choose shifts
    that can neither overflow nor underflow a whole row.

    Args:
        x: inputs, ``[N, heads, dim]``.
        projection: ``[heads, m, dim]``, rows marginally standard Gaussian.

    Returns:
        ``[N, heads, m]``.
    """
    _check_shapes(x, projection)
    proj = projection.to(x.dtype)
    # the constant rides in the product as one more column, so autograd keeps no [N, H, m]
    # intermediate besides the result
    c = -0.5 * x.pow(2).sum(dim=-1, keepdim=True) - 0.5 * math.log(projection.shape[1])
    ones = proj.new_ones(*proj.shape[:2], 1)
    return torch.einsum("nhd,hmd->nhm", torch.cat([x, c], -1), torch.cat([proj, ones], -1))


def graph_pair_moments(x: Tensor, y: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
    r"""Each graph's :math:`M = \mathbb E_{i,j}[(x_i + y_j)(x_i + y_j)^\top]` over its
    query-key pairs (the mean second moments of ``x`` and ``y`` plus their means' cross
    terms), ``[G, H, D, D]``, from ``x`` and ``y`` ``[N, H, D]``: what
    :func:`shrunk_exponents` shrinks the features along."""
    (xd, yd), counts, _ = _graph_blocks(x, y, batch, num_graphs)
    return _pair_moments(xd, yd, counts)


def _graph_blocks(x: Tensor, y: Tensor, batch: Tensor, num_graphs: int, sizes=None):
    """``x`` and ``y`` as zero-padded ``[G, n, H, D]`` blocks, the tokens per graph, and the
    map back to tokens (``[G, n, ...] -> [N, ...]``); one graph is one block, uncopied.
    ``sizes``: the batch's :class:`~flt3d.nn.graph.GraphSizes`, if known (no host sync)."""
    if num_graphs == 1:
        counts = x.new_full((1,), max(x.shape[0], 1))
        return (x.unsqueeze(0), y.unsqueeze(0)), counts, lambda d: d[0]
    sizes = graph_sizes(batch, num_graphs) if sizes is None else sizes
    blocks, real, perm = dense_batch([x, y], batch, sizes)
    counts = real.sum(1).clamp_min(1).to(x.dtype)

    def tokens(d: Tensor) -> Tensor:
        return d.new_zeros(x.shape[0], *d.shape[2:]).index_copy(0, perm, d[real])

    return blocks, counts, tokens


def _pair_moments(xd: Tensor, yd: Tensor, counts: Tensor) -> Tensor:
    per = counts.view(-1, 1, 1, 1)
    both = torch.cat([xd, yd], dim=1)  # [G, 2n, H, D]: one product for both second moments
    second = torch.einsum("gnhd,gnhe->ghde", both, both) / per
    cross = torch.einsum("ghd,ghe->ghde", xd.sum(1), yd.sum(1)) / per.pow(2)
    return second + cross + cross.transpose(-1, -2)


def shrunk_exponents(
    x: Tensor, y: Tensor, projection: Tensor, batch: Tensor, num_graphs: int, *, sizes=None
) -> tuple[Tensor, Tensor]:
    r"""Exponents of query and key random features shrunk per graph along the principal
    directions of its inputs,

    .. math::
        \log\phi(x)_m = w_m^\top A w_m + w_m^\top B x - \tfrac12\lVert x\rVert^2
        + \tfrac12\log\det B - \tfrac12\log m, \qquad B = I + M,\ A = \tfrac14(I - B^2),

    with ``M`` the graph's :func:`graph_pair_moments`. For every symmetric positive definite
    ``B`` the estimate is unbiased, :math:`\mathbb E_w[\phi(x)\cdot\phi(y)] = e^{x\cdot y}`
    (``B = b I`` is the scalar shrink of the generalised exponential features of
    Likhosherstov et al., 2022, with :math:`1 - 4a = b^2`; ``B = I`` is
    :func:`feature_exponents`). Along an eigenvector of ``M`` with eigenvalue :math:`\rho`,
    :math:`b = 1 + \rho` is the variance-optimal shrink to first order (:math:`b^2 = 1 +
    2\rho + O(\rho^2)`), fitted direction by direction rather than one scalar for all; for
    large :math:`\rho` it shrinks more than the optimum, which grows like
    :math:`\sqrt\rho`, at a small cost in variance. ``B`` shares ``M``'s eigenvectors, which
    matters: a Cholesky factor of :math:`I + 2M` in its place is as unbiased but noisier.
    Each graph's ``M`` comes from its own queries and keys, so graphs stay independent; it is
    not detached, so forces are the exact derivative of the energy computed, and it takes no
    eigenvectors (smooth and twice differentiable where ``M`` has repeated eigenvalues).
    Several graphs are laid out as padded ``[G, n_max, H, D]`` blocks (one graph is not
    copied).

    Args:
        x: queries, ``[N, H, D]``.
        y: keys, ``[N, H, D]``.
        projection: ``[H, m, D]``, rows marginally standard Gaussian.
        batch: graph id per token, ``[N]``.
        num_graphs: number of graphs.
        sizes: the batch's :class:`~flt3d.nn.graph.GraphSizes`, if known (saves a host sync).

    Returns:
        ``(query exponents, key exponents)``, each ``[N, H, m]``.
    """
    _check_shapes(x, projection)
    _check_shapes(y, projection)
    proj = projection.to(x.dtype)
    blocks, counts, tokens = _graph_blocks(x, y, batch, num_graphs, sizes)
    moments = _pair_moments(*blocks, counts)  # [G, H, D, D]
    eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
    shrink = eye + moments  # B
    half_logdet = torch.linalg.cholesky(shrink).diagonal(dim1=-2, dim2=-1).log().sum(-1)
    # w^T A w = -w^T (2M + M^2) w / 4, one product with the projections' outer squares
    squares = torch.einsum("hmd,hme->hmde", proj, proj).flatten(-2)  # no gradient
    quad_form = (2 * moments + moments @ moments).flatten(-2)
    quad = -0.25 * torch.einsum("ghk,hmk->ghm", quad_form, squares)  # [G, H, m]
    const = half_logdet.unsqueeze(-1) + quad - 0.5 * math.log(proj.shape[1])  # [G, H, m]

    def exponents(block: Tensor, t: Tensor) -> Tensor:
        shrunk = torch.einsum("gnhe,ghde->gnhd", block, shrink)  # B x
        e = torch.einsum("gnhd,hmd->gnhm", shrunk, proj) + const.unsqueeze(1)
        return tokens(e) - 0.5 * t.pow(2).sum(-1, keepdim=True)

    return exponents(blocks[0], x), exponents(blocks[1], y)


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
    peak = seg.expand_as(k_detached) if num_graphs == 1 else seg[batch]
    shifted = q_exponent + peak
    row = shifted.detach().amax(dim=-1, keepdim=True)
    # in place: the sum's backward keeps neither input nor output
    return torch.exp(shifted.sub_(row)), torch.exp(k_exponent - peak), row


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
