"""Exact mode of :class:`~flt3d.nn.flt_attention.FLTAttention`: every within-graph pair's weight.

Dense ``[G, n, n]`` blocks where padding is cheap, pair lists otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from flt3d.nn.attention import dense_exact_attention, exact_attention
from flt3d.nn.graph import dense_batch, graph_pairs

if TYPE_CHECKING:
    from flt3d.nn.flt_attention import FLTAttention

__all__ = ["exact_forward"]


def exact_forward(
    layer: FLTAttention, q, k, v, pos, batch, num_graphs, sizes, frequencies
) -> Tensor:
    """Exact attention of ``layer`` on centred coordinates (see :meth:`FLTAttention.forward`)."""
    if q.shape[0] and num_graphs * sizes.largest**2 <= layer.dense_waste * sizes.squares:
        return _exact_dense(layer, q, k, v, pos, batch, sizes, frequencies)
    pairs = graph_pairs(batch, num_graphs, causal=layer.causal)
    rpe = scale = None
    if layer.spectrum is not None:
        delta = pos[pairs[0]] - pos[pairs[1]]
        rpe, scale = layer.rpe(delta, frequencies), layer.logit_scale(delta)
    return exact_attention(q, k, v, pairs, rpe=rpe, mask=layer.mask, logit_scale=scale)


def _exact_dense(layer: FLTAttention, q, k, v, pos, batch, sizes, frequencies) -> Tensor:
    # the RPE matrix through its low-rank factors psi_Q . psi_K, equal to rpe(r_i - r_j)
    # up to rounding and far cheaper than n^2 R trigonometric evaluations; directly from
    # the displacements for closed forms and cutoff RPEs
    direct = layer.spectrum is not None and (layer.closed_form_rpe or layer.cutoff is not None)
    flat = [q, k, v]
    if direct:
        flat.append(pos)
    elif layer.spectrum is not None:
        flat += list(layer.spectrum.features(pos, frequencies))
    dense, real, perm = dense_batch(flat, batch, sizes)
    rpe = scale = None
    if direct:
        dense_pos = dense[3]
        delta = dense_pos.unsqueeze(2) - dense_pos.unsqueeze(1)
        rpe, scale = layer.rpe(delta, frequencies), layer.logit_scale(delta)
    elif layer.spectrum is not None:
        rpe = torch.einsum("gihr,gjhr->gijh", dense[3], dense[4])
        if layer.mask == "mul":
            rpe = rpe + layer.mul_shift(frequencies).to(rpe.dtype)
    out = dense_exact_attention(
        dense[0],
        dense[1],
        dense[2],
        real,
        rpe=rpe,
        mask=layer.mask,
        causal=layer.causal,
        logit_scale=scale,
    )[real]
    return torch.empty_like(out).index_copy_(0, perm, out)
