r"""The attention functions on flat batches: linear (random features) and exact (O(N^2)).

Both compute, per graph,

.. math::
    \mathrm{out}_i = \frac{\sum_j w_{ij} v_j}{\sum_j w_{ij}},

with ``j`` over the tokens of ``i``'s graph (``j <= i`` in causal mode). The linear path takes
feature maps with :math:`w_{ij} \approx \phi_Q(i)\cdot\phi_K(j)`; the exact path takes the
logits and the RPE of every pair.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint
from torch_geometric.utils import scatter, softmax

__all__ = ["linear_attention", "exact_attention", "dense_exact_attention"]

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
    return torch.einsum("nhm,nhme->nhe", phi_q, state[batch])


def _causal_chunk(
    phi_q: Tensor, phi_k: Tensor, v: Tensor, batch: Tensor, state: Tensor
) -> tuple[Tensor, Tensor]:
    # rows of one graph are contiguous here. Within the chunk: a masked [n, n, H] product;
    # before it: each graph's running state. No graph's result depends on another's, and no
    # row's on a later row, not even in rounding (masked terms are exact zeros).
    allowed = (batch.unsqueeze(1) == batch.unsqueeze(0)).tril()
    scores = torch.einsum("ihm,jhm->ijh", phi_q, phi_k) * allowed.unsqueeze(-1)
    out = torch.einsum("ijh,jhe->ihe", scores, v)
    graphs, counts = torch.unique_consecutive(batch, return_counts=True)
    earlier, updates = [], []
    for g, q_seg, k_seg, v_seg in zip(
        graphs.tolist(),
        phi_q.split(counts.tolist()),
        phi_k.split(counts.tolist()),
        v.split(counts.tolist()),
    ):
        earlier.append(torch.einsum("nhm,hme->nhe", q_seg, state[g]))
        updates.append(torch.einsum("nhm,nhe->hme", k_seg, v_seg))
    return out + torch.cat(earlier), state.index_add(0, graphs, torch.stack(updates))


def linear_attention(
    phi_q: Tensor,
    phi_k: Tensor,
    v: Tensor,
    batch: Tensor,
    num_graphs: int,
    *,
    causal: bool = False,
) -> Tensor:
    r"""Normalised linear attention with positive feature maps on a flat batch.

    .. math::
        S_g = \sum_{j \in g} \phi_K(j)\, [v_j, 1]^\top, \qquad
        \mathrm{out}_i = \frac{\phi_Q(i)^\top S_{g(i)}[:, :e]}{\phi_Q(i)^\top S_{g(i)}[:, e]}

    Per-graph sums are segment sums (no padding); causal mode is a prefix sum within each
    graph in token order. Work is chunked over tokens and recomputed in the backward pass, so
    no ``[N, H, M, E]`` tensor is kept and memory stays ``O(N (M + E) H)``.

    Args:
        phi_q: query features, ``[N, H, M]``, non-negative.
        phi_k: key features, ``[N, H, M]``, non-negative.
        v: values, ``[N, H, E]``.
        batch: graph id per token, ``[N]`` long.
        num_graphs: number of graphs ``G``.
        causal: attend only to earlier tokens of the same graph (and the token itself).

    Returns:
        ``[N, H, E]``.
    """
    n, heads, m = phi_q.shape
    if n == 0:
        return v.new_zeros(v.shape)
    perm = None
    if causal and bool((batch[1:] < batch[:-1]).any()):
        perm = torch.argsort(batch, stable=True)
        phi_q, phi_k, v, batch = phi_q[perm], phi_k[perm], v[perm], batch[perm]
    v1 = torch.cat([v, v.new_ones(n, heads, 1)], dim=-1)
    e = v1.shape[-1]
    # chunks are views from split(): their gradients are gathered once, not one
    # full-size gradient per chunk as indexing would
    if causal:
        rows = 256  # a [c, c, H] score block per chunk: cost grows like N * c
        state = v1.new_zeros(num_graphs, heads, m, e)
        outs = []
        for chunk in zip(*(t.split(rows) for t in (phi_q, phi_k, v1, batch)), strict=True):
            out, state = _maybe_checkpoint(_causal_chunk, *chunk, state)
            outs.append(out)
        out = torch.cat(outs, dim=0)
    elif num_graphs == 1:
        state = torch.einsum("nhm,nhe->hme", phi_k, v1)
        out = torch.einsum("nhm,hme->nhe", phi_q, state)
    else:
        rows = _chunk_rows(heads * m * e)
        state = v1.new_zeros(num_graphs, heads, m, e)
        for k_c, v_c, b_c in zip(phi_k.split(rows), v1.split(rows), batch.split(rows), strict=True):
            state = state.index_add(0, b_c, torch.einsum("nhm,nhe->nhme", k_c, v_c))
        out = torch.cat(
            [
                _maybe_checkpoint(_read_state, q_c, state, b_c)
                for q_c, b_c in zip(phi_q.split(rows), batch.split(rows), strict=True)
            ],
            dim=0,
        )
    tiny = torch.finfo(out.dtype).tiny
    out = out[..., :-1] / out[..., -1:].clamp_min(tiny)
    if perm is not None:
        out = torch.empty_like(out).index_copy_(0, perm, out)
    return out


def exact_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    pairs: tuple[Tensor, Tensor],
    *,
    rpe: Tensor | None = None,
    mask: str = "exp",
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

    Returns:
        ``[N, H, E]``.
    """
    i, j = pairs
    n = q.shape[0]
    logits = (q[i] * k[j]).sum(-1) / math.sqrt(q.shape[-1])
    if mask == "exp":
        if rpe is not None:
            logits = logits + rpe
        alpha = softmax(logits, i, num_nodes=n, dim=0)
        return scatter(alpha.unsqueeze(-1) * v[j], i, dim=0, dim_size=n, reduce="sum")
    if mask != "mul":
        raise ValueError(f"mask must be 'exp' or 'mul', got {mask!r}")
    peak = scatter(logits.detach(), i, dim=0, dim_size=n, reduce="max")
    w = torch.exp(logits - peak[i])
    if rpe is not None:
        w = w * rpe
    num = scatter(w.unsqueeze(-1) * v[j], i, dim=0, dim_size=n, reduce="sum")
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
