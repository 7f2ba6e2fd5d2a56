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

from flt3d.nn.graph import GraphSizes, dense_batch, gather, graph_sizes

__all__ = [
    "linear_attention",
    "linear_attention_sums",
    "causal_linear_attention",
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


def _shift_margin(dtype: torch.dtype) -> float:
    """How far above one a feature of a shared key shift may be (a third of the exponent range:
    29 in float32, 236 in float64), so that no sum of them overflows."""
    return math.log(torch.finfo(dtype).max) / 3


def _run_exact_shift(eq, ek, prev, run):
    # a masked [n, n, H, m] block, each key shifted by the running maximum at each query row
    n = eq.shape[0]
    row = (eq.detach() + run).amax(dim=-1, keepdim=True)
    a = torch.exp(eq + run - row)  # <= 1, and 1 where the row's maximum is
    allowed = torch.ones(n, n, dtype=torch.bool, device=eq.device).tril()[..., None, None]
    e = torch.exp((ek.unsqueeze(0) - run.unsqueeze(1)).masked_fill(~allowed, -torch.inf))
    scores = torch.einsum("ihm,ijhm->ijh", a, e)
    return scores, a * torch.exp(prev - run)


def _run_shared_shift(eq, ek, prev, run, wide):
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
        exact_scores, exact_carried = _run_exact_shift(eq, ek, prev, run)
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
        run = torch.maximum(torch.cummax(ek.detach(), dim=0).values, prev)  # [n, H, m]
        top = run[-1]
        scores, carried = _run_shared_shift(eq, ek, prev, run, wide)
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
    outers = [t.split(rows) if t is not None else [None] * len(pieces[0]) for t in (q_outer, k_outer)]
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
