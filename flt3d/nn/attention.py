r"""The attention functions on flat batches: linear (random features) and exact (O(N^2)).

Both compute, per graph,

.. math::
    \mathrm{out}_i = \frac{\sum_j w_{ij} v_j}{\sum_j w_{ij}},

with ``j`` over the tokens of ``i``'s graph (``j <= i`` in causal mode). The linear path takes
feature maps with :math:`w_{ij} \approx \phi_Q(i)\cdot\phi_K(j)`; the exact path takes the
logits and the RPE of every pair. Causal linear attention is in
:mod:`flt3d.nn.causal_attention`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint
from torch_geometric.utils import scatter, softmax

from flt3d.nn.graph import GraphSizes, dense_batch, gather, graph_sizes

__all__ = [
    "linear_attention",
    "linear_attention_sums",
    "exact_attention",
    "dense_exact_attention",
]

# Largest number of elements of a chunk's [n, H, M, E] outer product or [n, n, H] score block
# held at once (2^22 floats: 16 MiB, below the C allocator's 32 MiB mmap threshold).
_CHUNK_ELEMENTS = 1 << 22


def _chunk_rows(per_row: int) -> int:
    return max(1, _CHUNK_ELEMENTS // max(per_row, 1))


def _maybe_checkpoint(fn, *args):
    if torch.is_grad_enabled() and any(a.requires_grad for a in args if isinstance(a, Tensor)):
        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


def _read_state(phi_q: Tensor, state: Tensor, batch: Tensor) -> Tensor:
    return torch.einsum("nhm,nhme->nhe", phi_q, gather(state, batch))


def linear_attention_sums(
    phi_q: Tensor,
    phi_k: Tensor,
    v: Tensor,
    batch: Tensor,
    num_graphs: int,
    *,
    sizes: GraphSizes | None = None,
) -> Tensor:
    r"""Unnormalised sums :math:`\phi_Q(i)^\top S_{g(i)}` with :math:`S_g = \sum_{j\in g}\phi_K(j)[v_j, 1]^\top`.

    ``sizes`` (:class:`~flt3d.nn.graph.GraphSizes`, read from ``batch`` if not given) chooses
    between a padded layout and segment sums.

    Returns:
        ``[N, H, E + 1]``: the numerator and, last, the normaliser of :func:`linear_attention`.
    """
    n, heads, m = phi_q.shape
    v1 = torch.cat([v, v.new_ones(n, heads, 1)], dim=-1)
    if n == 0:
        return v1
    e = v1.shape[-1]
    # chunks are views from split(): their gradients are gathered once, not one
    # full-size gradient per chunk as indexing would
    if num_graphs == 1:
        state = torch.einsum("nhm,nhe->hme", phi_k, v1)
        return torch.einsum("nhm,hme->nhe", phi_q, state)
    sizes = graph_sizes(batch, num_graphs) if sizes is None else sizes.check(batch, num_graphs)
    if sizes.padded():
        # graphs of similar sizes (molecules): a padded [G, n, ...] layout turns the segment
        # sums into batched matrix products, with no per-token copy of the state
        (dq, dk, dv), real, perm = dense_batch([phi_q, phi_k, v1], batch, sizes)
        state = torch.einsum("gnhm,gnhe->ghme", dk, dv)
        out = torch.einsum("gnhm,ghme->gnhe", dq, state)[real]
        return torch.empty_like(out).index_copy_(0, perm, out)
    rows = _chunk_rows(heads * m * e)
    state = v1.new_zeros(num_graphs, heads, m, e)
    for k_c, v_c, b_c in zip(phi_k.split(rows), v1.split(rows), batch.split(rows), strict=True):
        state = state.index_add(0, b_c, torch.einsum("nhm,nhe->nhme", k_c, v_c))
    return torch.cat(
        [
            _maybe_checkpoint(_read_state, q_c, state, b_c)
            for q_c, b_c in zip(phi_q.split(rows), batch.split(rows), strict=True)
        ],
        dim=0,
    )


def linear_attention(
    phi_q: Tensor,
    phi_k: Tensor,
    v: Tensor,
    batch: Tensor,
    num_graphs: int,
    *,
    sizes: GraphSizes | None = None,
) -> Tensor:
    r"""Normalised linear attention with positive feature maps on a flat batch.

    .. math::
        S_g = \sum_{j \in g} \phi_K(j)\, [v_j, 1]^\top, \qquad
        \mathrm{out}_i = \frac{\phi_Q(i)^\top S_{g(i)}[:, :e]}{\phi_Q(i)^\top S_{g(i)}[:, e]}

    Per-graph sums are segment sums (no padding). Work is chunked over tokens and recomputed in
    the backward pass, so no ``[N, H, M, E]`` tensor is kept and memory stays
    ``O(N (M + E) H)``. Causal attention is :func:`causal_linear_attention`.

    Args:
        phi_q: query features, ``[N, H, M]``, non-negative.
        phi_k: key features, ``[N, H, M]``, non-negative.
        v: values, ``[N, H, E]``.
        batch: graph id per token, ``[N]`` long.
        num_graphs: number of graphs ``G``.
        sizes: the batch's :class:`~flt3d.nn.graph.GraphSizes` (read from ``batch`` if not
            given: one host sync).

    Returns:
        ``[N, H, E]``.
    """
    if phi_q.shape[0] == 0:
        return v.new_zeros(v.shape)
    out = linear_attention_sums(phi_q, phi_k, v, batch, num_graphs, sizes=sizes)
    tiny = torch.finfo(out.dtype).tiny
    return out[..., :-1] / out[..., -1:].clamp_min(tiny)


def exact_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    pairs: tuple[Tensor, Tensor],
    *,
    rpe: Tensor | None = None,
    mask: str = "exp",
    logit_scale: Tensor | None = None,
) -> Tensor:
    r"""Exact softmax-kernel attention over the given token pairs, with an RPE per pair.

    .. math::
        w_{ij} = e^{q_i\cdot k_j/\sqrt d + M_{ij}}\ (\texttt{exp}) \quad\text{or}\quad
        w_{ij} = e^{q_i\cdot k_j/\sqrt d}\, M_{ij}\ (\texttt{mul})

    Args:
        q: queries, ``[N, H, d]``.
        k: keys, ``[N, H, d]``.
        v: values, ``[N, H, E]``.
        pairs: ``(i, j)`` from :func:`flt3d.nn.graph.graph_pairs`, each ``[P]``.
        rpe: the RPE :math:`M_{ij}` of each pair, ``[P, H]``; ``None`` for none.
        mask: ``"exp"`` (added to the logits) or ``"mul"`` (multiplies the kernel).
        logit_scale: a factor on :math:`q_i\cdot k_j/\sqrt d` per pair, ``[P, H]`` or ``[P, 1]``
            (default none).

    Returns:
        ``[N, H, E]``.
    """
    i, j = pairs
    n = q.shape[0]
    logits = (gather(q, i) * gather(k, j)).sum(-1) / math.sqrt(q.shape[-1])
    if logit_scale is not None:
        logits = logits * logit_scale
    if mask == "exp":
        if rpe is not None:
            logits = logits + rpe
        alpha = softmax(logits, i, num_nodes=n, dim=0)
        return scatter(alpha.unsqueeze(-1) * gather(v, j), i, dim=0, dim_size=n, reduce="sum")
    if mask != "mul":
        raise ValueError(f"mask must be 'exp' or 'mul', got {mask!r}")
    peak = scatter(logits.detach(), i, dim=0, dim_size=n, reduce="max")
    w = torch.exp(logits - gather(peak, i))
    if rpe is not None:
        w = w * rpe
    num = scatter(w.unsqueeze(-1) * gather(v, j), i, dim=0, dim_size=n, reduce="sum")
    den = scatter(w, i, dim=0, dim_size=n, reduce="sum").unsqueeze(-1)
    return num / den.clamp_min(torch.finfo(den.dtype).tiny)


def dense_exact_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    key_mask: Tensor,
    *,
    rpe: Tensor | None = None,
    mask: str = "exp",
    causal: bool = False,
    logit_scale: Tensor | None = None,
) -> Tensor:
    r"""Exact attention on graphs laid out densely, ``[G, n, ...]``, with masked keys.

    Same weights as :func:`exact_attention`; padded keys get weight exactly zero, so they
    never reach the normaliser. Cheaper than the pair list when graphs have similar sizes.

    Args:
        q: queries, ``[G, n, H, d]``.
        k: keys, ``[G, n, H, d]``.
        v: values, ``[G, n, H, E]``.
        key_mask: ``[G, n]``, true for real tokens (each graph's first rows).
        rpe: ``[G, n, n, H]`` or ``None``.
        mask: ``"exp"`` or ``"mul"``.
        causal: keys at or before the query only.

    Returns:
        ``[G, n, H, E]``; rows of padding are meaningless.
    """
    n = q.shape[1]
    logits = torch.einsum("gihd,gjhd->gijh", q, k) / math.sqrt(q.shape[-1])
    if logit_scale is not None:  # [G, n, n, H or 1]
        logits = logits * logit_scale
    allowed = key_mask.unsqueeze(1)
    if causal:
        allowed = allowed & torch.ones(n, n, dtype=torch.bool, device=q.device).tril()
    allowed = allowed.unsqueeze(-1)  # [G, n, n, 1]
    if mask == "exp":
        if rpe is not None:
            logits = logits + rpe
        alpha = torch.softmax(logits.masked_fill(~allowed, -torch.inf), dim=2)
        return torch.einsum("gijh,gjhe->gihe", alpha, v)
    if mask != "mul":
        raise ValueError(f"mask must be 'exp' or 'mul', got {mask!r}")
    logits = logits.masked_fill(~allowed, -torch.inf)
    w = torch.exp(logits - logits.detach().amax(dim=2, keepdim=True))
    if rpe is not None:
        w = w * rpe
    num = torch.einsum("gijh,gjhe->gihe", w, v)
    den = w.sum(dim=2).unsqueeze(-1)
    return num / den.clamp_min(torch.finfo(den.dtype).tiny)
