r"""Causal linear attention on flat batches: prefix sums of random features per graph.

Per graph, in row order,

.. math::
    \mathrm{out}_i = \frac{\sum_{j\le i} w_{ij} v_j}{\sum_{j\le i} w_{ij}},
    \qquad w_{ij} \approx \phi_Q(i)\cdot\phi_K(j),

computed chunk by chunk with a running state, so that no row is silently zero however large
the keys are and no row's output depends on later tokens.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from flt3d.nn.attention import _CHUNK_ELEMENTS, _maybe_checkpoint

__all__ = ["causal_linear_attention"]


def _shift_margin(dtype: torch.dtype) -> float:
    """How far above one a feature of a shared key shift may be (a third of the exponent range:
    29 in float32, 236 in float64), so that no sum of them overflows."""
    return math.log(torch.finfo(dtype).max) / 3


def _run_exact_shift(eq, ek, prev):
    # a masked [n, n, H, m] block, each key shifted by the running maximum at each query row
    n = eq.shape[0]
    run = torch.maximum(torch.cummax(ek.detach(), dim=0).values, prev)  # [n, H, m]
    row = (eq.detach() + run).amax(dim=-1, keepdim=True)
    a = torch.exp(eq + run - row)  # <= 1, and 1 where the row's maximum is
    allowed = torch.ones(n, n, dtype=torch.bool, device=eq.device).tril()[..., None, None]
    e = torch.exp((ek.unsqueeze(0) - run.unsqueeze(1)).masked_fill(~allowed, -torch.inf))
    scores = torch.einsum("ihm,ijhm->ijh", a, e)
    return scores, a * torch.exp(prev - run)


def _run_shared_shift(eq, ek, prev, wide):
    # keys shifted by one [H, m] shift known at the run's first row (the graph's maximum so
    # far, or that row's key): the block is a product of [n, H, m] features. Where the keys
    # are ``wide`` (some feature spans more than the margin), rows from the first key more
    # than the margin above the shift on take the running maximum instead.
    detached = ek.detach()
    shift = torch.maximum(prev, detached[0])
    margin = _shift_margin(eq.dtype)
    row = (eq.detach() + shift).amax(dim=-1, keepdim=True)
    a = torch.exp(eq + shift - row)  # <= 1, and 1 where the row's maximum is
    fresh = torch.exp((ek - shift).clamp_max(margin))
    allowed = torch.ones(a.shape[0], a.shape[0], dtype=a.dtype, device=a.device).tril()
    scores = torch.einsum("ihm,jhm->ijh", a, fresh) * allowed.unsqueeze(-1)
    carried = a * torch.exp(prev - shift)
    over = (detached - shift).flatten(1).amax(dim=1) > margin if wide else None  # [n]
    if over is not None and bool(over.any()):  # the choice per row reads no later key
        slow = torch.cummax(over.to(torch.uint8), dim=0).values.bool()
        exact_scores, exact_carried = _run_exact_shift(eq, ek, prev)
        scores = torch.where(slow.view(-1, 1, 1), exact_scores, scores)
        carried = torch.where(slow.view(-1, 1, 1), exact_carried, carried)
    return scores, carried


def _causal_chunk(
    q_exponent: Tensor,
    k_exponent: Tensor,
    v: Tensor,
    q_outer: Tensor | None,
    k_outer: Tensor | None,
    runs: list[tuple[int, int]],
    wide: bool,
    state: Tensor,
    peak: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    # rows of one graph are contiguous here: ``runs`` lists (graph, rows) in row order. Per
    # graph, the state before the chunk is kept relative to a per-feature maximum of its key
    # exponents (a prefix maximum, so no row sees a later one); within the chunk, the keys
    # share a shift known at its first row (see ``_run_shared_shift``). Each row is shifted
    # by its own maximum over features, so no entry overflows and every row's largest term
    # is at least one: no row's normaliser is silently zero.
    graphs = [g for g, _ in runs]
    sizes = [size for _, size in runs]
    split = [t.split(sizes) if t is not None else [None] * len(sizes) for t in (q_outer, k_outer)]
    outs, states, peaks = [], [], []
    for g, eq, ek, vs, pq, pk in zip(
        graphs, q_exponent.split(sizes), k_exponent.split(sizes), v.split(sizes), *split
    ):
        prev = peak[g]  # [H, m]; -inf before the graph's first key
        top = torch.maximum(ek.detach().amax(dim=0), prev)  # [H, m]
        scores, carried = _run_shared_shift(eq, ek, prev, wide)
        fresh = torch.exp(ek - top)
        if pq is None:
            out = torch.einsum("ijh,jhe->ihe", scores, vs)
            out = out + torch.einsum("ihm,hme->ihe", carried, state[g])
            update = torch.einsum("nhm,nhe->hme", fresh, vs)
        else:
            scores = scores * torch.einsum("ihr,jhr->ijh", pq, pk)
            out = torch.einsum("ijh,jhe->ihe", scores, vs)
            out = out + torch.einsum("ihm,ihr,hmre->ihe", carried, pq, state[g])
            update = torch.einsum("nhm,nhr,nhe->hmre", fresh, pk, vs)
        decay = torch.exp(prev - top).view(*top.shape, *([1] * (state.dim() - 3)))
        outs.append(out)
        states.append(state[g] * decay + update)
        peaks.append(top)
    index = torch.tensor(graphs, device=state.device)
    return (
        torch.cat(outs),
        state.index_copy(0, index, torch.stack(states)),
        peak.index_copy(0, index, torch.stack(peaks)),
    )


def _chunk_runs(counts: list[int], rows: int) -> list[list[tuple[int, int]]]:
    """(graph, rows) runs of each chunk of ``rows`` rows, for graphs of ``counts`` rows laid
    out one after the other (graph order)."""
    chunks, current, room = [], [], rows
    for g, count in enumerate(counts):
        while count:
            take = min(count, room)
            current.append((g, take))
            count, room = count - take, room - take
            if room == 0:
                chunks.append(current)
                current, room = [], rows
    if current:
        chunks.append(current)
    return chunks


def causal_linear_attention(
    q_exponent: Tensor,
    k_exponent: Tensor,
    v: Tensor,
    batch: Tensor,
    num_graphs: int,
    *,
    q_outer: Tensor | None = None,
    k_outer: Tensor | None = None,
) -> Tensor:
    r"""Causal linear attention from the exponents of positive features, on a flat batch.

    .. math::
        \mathrm{out}_i = \frac{\sum_{j\le i}\hat K_{ij}\,M_{ij}\,v_j}{\sum_{j\le i}\hat K_{ij}\,M_{ij}},
        \qquad \hat K_{ij} = \sum_m e^{e^Q_{im} + e^K_{jm}},\quad M_{ij} = \psi_Q(i)\cdot\psi_K(j)

    (:math:`M = 1` without ``q_outer`` / ``k_outer``), a prefix sum over each graph's tokens in
    row order. The running state is kept relative to a running maximum of every key feature,
    and each query row is shifted by its own maximum over features of :math:`e^Q + \max e^K`:
    no entry overflows, and every row's normaliser is at least that of its largest term (one,
    times :math:`M`), so no row is silently zero however large the keys are. Work is chunked
    and recomputed in the backward pass: within a chunk the keys share one shift known at its
    first row, so its block is a product of features (``[c, c, H]``); rows from a key far
    above that shift on use each row's running maximum (a ``[c, c, H, m]`` block). Which
    rows do reads no later key, so a row's output does not depend on later tokens, to the bit.

    Args:
        q_exponent: query exponents, ``[N, H, m]`` (:func:`~flt3d.nn.random_features.feature_exponents`).
        k_exponent: key exponents, ``[N, H, m]``.
        v: values, ``[N, H, E]``.
        batch: graph id per token, ``[N]``.
        num_graphs: number of graphs.
        q_outer: optional positive-sum factors :math:`\psi_Q`, ``[N, H, r]`` (the ``mul`` mask).
        k_outer: their key side, ``[N, H, r]``.

    Returns:
        ``[N, H, E]``.
    """
    n, heads, m = q_exponent.shape
    if n == 0:
        return v.new_zeros(v.shape)
    perm = None
    # one host read: whether rows are in graph order, whether some key feature spans more
    # than a shared shift allows (else no chunk needs a row's running maximum), and the graph
    # sizes that split chunks
    keys = k_exponent.detach()
    wide = (keys.amax(0) - keys.amin(0)).amax() > _shift_margin(keys.dtype)
    unsorted, wide, *counts = torch.cat(
        [
            (batch[1:] < batch[:-1]).any().view(1).long(),
            wide.view(1).long(),
            torch.bincount(batch, minlength=num_graphs),
        ]
    ).tolist()
    if unsorted:
        perm = torch.argsort(batch, stable=True)
        q_exponent, k_exponent, v, batch = q_exponent[perm], k_exponent[perm], v[perm], batch[perm]
        if q_outer is not None:
            q_outer, k_outer = q_outer[perm], k_outer[perm]
    v1 = torch.cat([v, v.new_ones(n, heads, 1)], dim=-1)
    e = v1.shape[-1]
    r = () if q_outer is None else (q_outer.shape[-1],)
    state = v1.new_zeros(num_graphs, heads, m, *r, e)
    peak = q_exponent.new_full((num_graphs, heads, m), -torch.inf)
    rows = max(8, min(256, int(math.sqrt(_CHUNK_ELEMENTS / (heads * m * (r[0] if r else 1))))))
    pieces = [t.split(rows) for t in (q_exponent, k_exponent, v1)]
    outers = [
        t.split(rows) if t is not None else [None] * len(pieces[0]) for t in (q_outer, k_outer)
    ]
    outs = []
    for eq, ek, vc, pq, pk, runs in zip(*pieces, *outers, _chunk_runs(counts, rows), strict=True):
        out, state, peak = _maybe_checkpoint(
            _causal_chunk, eq, ek, vc, pq, pk, runs, bool(wide), state, peak
        )
        outs.append(out)
    out = torch.cat(outs, dim=0)
    out = out[..., :-1] / out[..., -1:]
    if perm is not None:
        out = torch.empty_like(out).index_copy_(0, perm, out)
    return out
