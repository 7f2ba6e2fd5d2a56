r"""Sums of messages over pairs, chunked so memory stays linear in the number of pairs' ends.

.. math::
    \mathrm{out}_i = \sum_{p:\ i_p = i} \mathrm{fn}(a_{i_p}, b_{j_p}, e_p)

Small inputs take the plain path (gather, ``fn``, ``index_add``), which autograd can
differentiate any number of times. Large ones take a chunked path that never holds more than
one chunk of per-pair tensors: the forward pass keeps only the inputs, and the backward pass
recomputes each chunk's messages and scatters their gradients into one buffer per input. That
backward does not build a graph itself; a forward pass that will be differentiated twice (a
loss on forces, ``create_graph=True``) runs inside :func:`differentiable_pair_sums`, which
takes the plain path everywhere (its memory is then that of every pair's messages), and the
chunked backward refuses ``create_graph`` rather than return wrong second derivatives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor

from flt3d.nn.graph import gather

__all__ = ["pair_sum", "pair_max", "row_max", "pair_chunking", "differentiable_pair_sums"]

# per-pair elements of one chunk (2^22 floats: 16 MiB in float32)
_CHUNK_ELEMENTS = 1 << 22
# the plain path is taken up to this many chunks' worth of pairs (16 MiB of float32 per tensor):
# beyond one chunk the chunked path is both leaner and faster (energy + forces of 1,000 atoms
# of FLTNet in inference: 0.22 against 0.70 GB above the baseline, 0.83 x the CPU time)
_PLAIN_CHUNKS = 1
# set by differentiable_pair_sums(): every pair sum takes the plain (twice differentiable) path
_PLAIN_ONLY = False


@contextmanager
def differentiable_pair_sums() -> Iterator[None]:
    """Within this context every :func:`pair_sum` takes the plain path, whose backward pass
    can itself be differentiated (forces in a loss: ``create_graph=True``)."""
    global _PLAIN_ONLY
    previous, _PLAIN_ONLY = _PLAIN_ONLY, True
    try:
        yield
    finally:
        _PLAIN_ONLY = previous


def _messages(fn, i, j, sources_i, sources_j, pair_data, rows: slice):
    ic, jc = i[rows], j[rows]
    return fn(
        *(gather(a, ic) for a in sources_i),
        *(gather(b, jc) for b in sources_j),
        *(e[rows] for e in pair_data),
    )


class _ChunkedPairSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, fn, i, j, num_nodes, rows, sizes, *tensors):
        ni, nj, ne = sizes
        sources_i, sources_j = tensors[:ni], tensors[ni : ni + nj]
        pair_data = tensors[ni + nj : ni + nj + ne]
        out = None
        for start in range(0, max(i.numel(), 1), rows):
            chunk = slice(start, start + rows)
            msg = _messages(fn, i, j, sources_i, sources_j, pair_data, chunk)
            if out is None:
                out = msg.new_zeros((num_nodes, *msg.shape[1:]))
            out.index_add_(0, i[chunk], msg)
        ctx.fn, ctx.rows, ctx.sizes = fn, rows, sizes
        ctx.save_for_backward(i, j, *tensors)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        i, j, *tensors = ctx.saved_tensors
        ni, nj, ne = ctx.sizes
        needs = ctx.needs_input_grad[6:]
        if torch.is_grad_enabled():
            raise RuntimeError(
                "a second derivative through a chunked pair_sum (create_graph=True): run the "
                "forward pass inside flt3d.nn.pairs.differentiable_pair_sums()"
            )
        grads = [torch.zeros_like(t) if need else None for t, need in zip(tensors, needs)]
        params = [t for t, need in zip(tensors[ni + nj + ne :], needs[ni + nj + ne :]) if need]
        for start in range(0, i.numel(), ctx.rows):
            chunk = slice(start, start + ctx.rows)
            ic, jc = i[chunk], j[chunk]
            with torch.enable_grad():
                leaves = []
                gathered = []
                for k, t in enumerate(tensors[: ni + nj + ne]):
                    if k < ni:
                        piece = gather(t, ic)
                    elif k < ni + nj:
                        piece = gather(t, jc)
                    else:
                        piece = t[chunk]
                    piece = piece.detach().requires_grad_(needs[k])
                    gathered.append(piece)
                    if needs[k]:
                        leaves.append(piece)
                msg = ctx.fn(*gathered)
                wrt = leaves + params
                if not wrt:
                    continue
                pieces = torch.autograd.grad(msg, wrt, gather(grad_out, ic), allow_unused=True)
            it = iter(pieces)
            for k in range(ni + nj + ne):
                if not needs[k]:
                    continue
                g = next(it)
                if g is None:
                    continue
                if k < ni:
                    grads[k].index_add_(0, ic, g)
                elif k < ni + nj:
                    grads[k].index_add_(0, jc, g)
                else:
                    grads[k][chunk] += g
            offset = ni + nj + ne
            for k in range(offset, len(tensors)):
                if needs[k]:
                    g = next(it)
                    if g is not None:
                        grads[k] += g
        return (None, None, None, None, None, None, *grads)


def pair_chunking(num_pairs: int, per_pair: int) -> bool:
    """Whether ``num_pairs`` pairs of ``per_pair`` elements each take the chunked path."""
    if _PLAIN_ONLY:
        return False
    return num_pairs * max(per_pair, 1) > _PLAIN_CHUNKS * _CHUNK_ELEMENTS


def pair_sum(
    fn: Callable[..., Tensor],
    index: Tensor,
    num_nodes: int,
    *,
    sources_i: Sequence[Tensor] = (),
    sources_j: Sequence[Tensor] = (),
    pair_data: Sequence[Tensor] = (),
    params: Sequence[Tensor] = (),
    per_pair: int = 1,
    chunked: bool | None = None,
) -> Tensor:
    r"""Sum ``fn``'s per-pair messages at each pair's receiver ``i``.

    Args:
        fn: ``fn(*a_i, *b_j, *e) -> [P_c, ...]``, called on the rows of a chunk of pairs; it
            may also use the tensors in ``params`` (module parameters) directly.
        index: ``[2, P]`` pairs ``(i, j)``.
        num_nodes: rows of the output.
        sources_i: node tensors read at ``i``, each ``[N, ...]``.
        sources_j: node tensors read at ``j``, each ``[N, ...]``.
        pair_data: per-pair tensors, each ``[P, ...]``.
        params: tensors ``fn`` uses besides its arguments (parameters and anything computed
            from them), so the chunked backward can reach them.
        per_pair: elements of one pair's largest intermediate, to size the chunks.
        chunked: force the chunked (``True``) or plain (``False``) path; default: chunked
            when the per-pair tensors would exceed 16 chunks (2^26 elements), plain inside
            :func:`differentiable_pair_sums`.

    Returns:
        ``[num_nodes, ...]``.
    """
    i, j = index[0], index[1]
    rows = max(1, _CHUNK_ELEMENTS // max(per_pair, 1))
    if chunked is None:
        chunked = pair_chunking(i.numel(), per_pair)
    if not chunked:
        msg = _messages(fn, i, j, sources_i, sources_j, pair_data, slice(None))
        return msg.new_zeros((num_nodes, *msg.shape[1:])).index_add(0, i, msg)
    tensors = (*sources_i, *sources_j, *pair_data, *params)
    sizes = (len(sources_i), len(sources_j), len(pair_data))
    return _ChunkedPairSum.apply(fn, i, j, num_nodes, rows, sizes, *tensors)


@torch.no_grad()
def pair_max(
    fn: Callable[..., Tensor],
    index: Tensor,
    num_nodes: int,
    *,
    sources_i: Sequence[Tensor] = (),
    sources_j: Sequence[Tensor] = (),
    pair_data: Sequence[Tensor] = (),
    per_pair: int = 1,
) -> Tensor:
    """The maximum of ``fn``'s per-pair values at each receiver ``i`` (``-inf`` where none),
    without gradients, chunked like :func:`pair_sum`."""
    i, j = index[0], index[1]
    rows = max(1, _CHUNK_ELEMENTS // max(per_pair, 1))
    out = None
    for start in range(0, max(i.numel(), 1), rows):
        chunk = slice(start, start + rows)
        val = _messages(fn, i, j, sources_i, sources_j, pair_data, chunk)
        top = row_max(val, i[chunk], num_nodes)
        out = top if out is None else torch.maximum(out, top)
    return out


def row_max(values: Tensor, i: Tensor, num_nodes: int) -> Tensor:
    """The maximum of per-pair ``values [P, ...]`` at each receiver ``i`` (``-inf`` where
    none), ``[num_nodes, ...]``, without gradients: the shift of a softmax over pairs."""
    values = values.detach()
    out = values.new_full((num_nodes, *values.shape[1:]), -torch.inf)
    index = i.view(-1, *([1] * (values.dim() - 1))).expand_as(values)
    return out.scatter_reduce(0, index, values, reduce="amax")
