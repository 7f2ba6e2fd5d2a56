"""FAVOR+ positive random features for the softmax kernel."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "orthogonal_gaussian",
    "positive_features",
    "feature_exponents",
    "optimal_a",
    "graph_optimal_a",
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


def feature_exponents(x: Tensor, projection: Tensor, *, a: Tensor | float = 0.0) -> Tensor:
    r"""Exponents of positive random features of the softmax kernel, before any shift.

    .. math::
        \log\phi(x)_m = a\lVert w_m\rVert^2 + \sqrt{1 - 4a}\; w_m\cdot x
        - \tfrac12\lVert x\rVert^2 + \tfrac{D}{4}\log(1 - 4a) - \tfrac12\log m,

    for which :math:`\mathbb E_w[\phi(x)\cdot\phi(y)] = e^{x\cdot y}` for every
    :math:`a < 1/8` (``D`` the input dimension). ``a = 0`` is FAVOR+; :func:`optimal_a` gives
    the ``a`` of least variance (the generalised exponential features of Likhosherstov et
    al., 2022). Working with exponents lets callers choose shifts that can neither overflow nor
    underflow a whole row.

    Args:
        x: inputs, ``[N, heads, dim]``.
        projection: ``[heads, m, dim]``, rows marginally standard Gaussian.
        a: the parameter ``a``, a float or a tensor broadcastable to ``[N, heads, 1]``; the
            query and key sides of one kernel must use the same value.

    Returns:
        ``[N, heads, m]``.
    """
    _check_shapes(x, projection)
    proj = projection.to(x.dtype)
    # every term rides in one product: x gets the columns [a, c] and the projection [|w|^2, 1],
    # so autograd keeps no [N, H, m] intermediate besides the result
    c = -0.5 * x.pow(2).sum(dim=-1, keepdim=True) - 0.5 * math.log(projection.shape[1])
    if isinstance(a, float) and a == 0.0:
        ones = proj.new_ones(*proj.shape[:2], 1)
        return torch.einsum("nhd,hmd->nhm", torch.cat([x, c], -1), torch.cat([proj, ones], -1))
    a = torch.as_tensor(a, dtype=x.dtype, device=x.device)
    shrink = 1 - 4 * a
    c = c + 0.25 * x.shape[-1] * shrink.log()
    columns = [x * shrink.sqrt(), a.expand(*x.shape[:2], 1), c.expand(*x.shape[:2], 1)]
    rows = [proj, proj.pow(2).sum(-1, keepdim=True), proj.new_ones(*proj.shape[:2], 1)]
    return torch.einsum("nhd,hmd->nhm", torch.cat(columns, -1), torch.cat(rows, -1))


def optimal_a(rho: Tensor) -> Tensor:
    r"""The variance-minimising ``a`` of :func:`feature_exponents` for
    :math:`\rho = \mathbb E\lVert x + y\rVert^2 / D`:
    :math:`a^* = \tfrac1{16}\big(1 - 2\rho - \sqrt{(2\rho + 1)^2 + 8\rho}\big) \le 0`.

    It minimises the second moment of :math:`\phi(x)\cdot\phi(y)`, whose log is
    :math:`D\,[\log(1-4a) - \tfrac12\log(1-8a) + 2\rho\,\tfrac{1-4a}{1-8a}]` up to terms free of
    ``a``; ``a = 0`` (FAVOR+) is optimal only for :math:`\rho = 0`.
    """
    return (1 - 2 * rho - torch.sqrt((2 * rho + 1).pow(2) + 8 * rho)) / 16


def graph_optimal_a(x: Tensor, y: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
    """:func:`optimal_a` from each graph's queries ``x`` and keys ``y`` (``[N, H, D]``), per
    graph and head, read back per token: ``[N, H, 1]``. Graphs stay independent.

    Not detached: the output is then a differentiable function of the inputs, and its
    gradient stays unbiased (the estimate's expectation does not depend on ``a``); forces
    are then the exact derivative of the energy computed."""
    counts = torch.bincount(batch, minlength=num_graphs).clamp_min(1).to(x.dtype).view(-1, 1)
    def mean(t):
        return t.new_zeros(num_graphs, *t.shape[1:]).index_add_(0, batch, t) / counts.view(
            -1, *([1] * (t.dim() - 1))
        )
    sq = mean(x.pow(2).sum(-1)) + mean(y.pow(2).sum(-1))  # [G, H]
    cross = 2 * (mean(x) * mean(y)).sum(-1)
    rho = ((sq + cross) / x.shape[-1]).clamp_min(0.0)
    a = optimal_a(rho).unsqueeze(-1)  # [G, H, 1]
    return a.expand(x.shape[0], -1, -1) if num_graphs == 1 else a[batch]


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
