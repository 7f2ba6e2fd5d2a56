"""Local attention of :class:`~flt3d.nn.flt_attention.FLTAttention` (``far=None``).

Only pairs within the cutoff attend, weighed by the cosine envelope,
:math:`w_{ij} = u(r_{ij}/r_c)\\,e^{q_i\\cdot k_j/\\sqrt d + F(\\Delta)}`, exactly in both modes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from flt3d.nn.graph import distance, gather, graph_pairs
from flt3d.nn.neighbors import cosine_cutoff, local_neighbors
from flt3d.nn.pairs import pair_chunking, pair_max, pair_sum, row_max
from flt3d.nn.precision import floored_exp

if TYPE_CHECKING:
    from flt3d.nn.flt_attention import FLTAttention

__all__ = ["local_attention"]


def local_attention(
    layer: FLTAttention, q, k, v, pos, batch, num_graphs, neighbors, sizes
) -> Tensor:
    # far=None: w_ij = u(r_ij) exp(q.k / sqrt(d) + F(delta)) over pairs within the cutoff.
    # Exact mode sums every pair of a graph (u = 0 beyond the cutoff); linear mode the
    # pairs of each small graph within the cutoff, or a neighbour list: the same weights.
    # A periodic list (pairs across cell boundaries, images included) serves both modes.
    periodic = neighbors is not None and neighbors.periodic
    if not periodic and (layer.attention == "exact" or sizes.small()):
        i, j = graph_pairs(batch, num_graphs)
        delta = gather(pos, i) - gather(pos, j)
        if layer.attention == "linear":
            near = distance(delta) < layer.cutoff
            i, j, delta = i[near], j[near], delta[near]
        index = torch.stack([i, j])
    else:
        neighbors = local_neighbors(neighbors, pos, batch, num_graphs, layer.cutoff)
        index, delta = neighbors.index, neighbors.displacements(pos)
    scale = layer.head_channels**-0.5

    def log_weight(q_i, k_j, delta_p):
        return scale * (q_i * k_j).sum(-1) + layer.short_range(delta_p)

    def message(q_i, shift_i, k_j, v_j, delta_p):
        envelope = cosine_cutoff(distance(delta_p), layer.cutoff).unsqueeze(-1)
        w = envelope * floored_exp(log_weight(q_i, k_j, delta_p) - shift_i)
        v1 = torch.cat([v_j, v_j.new_ones(*v_j.shape[:-1], 1)], dim=-1)
        return w.unsqueeze(-1) * v1

    per_pair = 3 * layer.heads * (2 * layer.head_channels + 2)
    if not pair_chunking(index.shape[1], per_pair):
        # small enough to hold every pair's tensors: the logits once, for the shift and the
        # weights, and the numerator and normaliser as two sums (no concatenated ones)
        i, j = index
        log_w = log_weight(gather(q, i), gather(k, j), delta)  # [P, H]
        top = row_max(log_w, i, v.shape[0])
        envelope = cosine_cutoff(distance(delta), layer.cutoff).unsqueeze(-1)
        w = envelope * floored_exp(log_w - gather(top, i))
        num = v.new_zeros(v.shape).index_add(0, i, w.unsqueeze(-1) * gather(v, j))
        den = w.new_zeros(v.shape[0], layer.heads).index_add(0, i, w)
        return num / den.unsqueeze(-1)
    shift = pair_max(
        log_weight,
        index,
        v.shape[0],
        sources_i=(q,),
        sources_j=(k,),
        pair_data=(delta,),
        per_pair=per_pair,
    )  # [N, H], finite: every row has its self pair
    sums = pair_sum(
        message,
        index,
        v.shape[0],
        sources_i=(q, shift),
        sources_j=(k, v),
        pair_data=(delta,),
        params=tuple(layer.spectrum.parameters()),
        per_pair=per_pair,
    )
    return sums[..., :-1] / sums[..., -1:]
