"""The exact short range of a cutoff :class:`~flt3d.nn.flt_attention.FLTAttention` in linear mode.

Pairs within the cutoff get their exact weights; the random-feature estimate of the other
pairs is rescaled per query row by how its near estimate compares with the exact weights it
estimates (a ratio estimator). On a neighbour list (:func:`with_short_range`) or, for small
graphs, on dense ``[G, n, n]`` blocks (:func:`with_short_range_dense`): the same weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from flt3d.nn.graph import dense_batch, distance, gather
from flt3d.nn.pairs import pair_chunking, pair_max, pair_sum, row_max

if TYPE_CHECKING:
    from flt3d.nn.flt_attention import FLTAttention
    from flt3d.nn.neighbors import Neighbors

__all__ = ["content_correction", "near_extra", "with_short_range", "with_short_range_dense"]


def content_correction(layer: FLTAttention, content: Tensor, delta: Tensor) -> Tensor:
    # with a far temperature tau the features estimate exp(tau q.k / sqrt d); the exact
    # content logit s q.k / sqrt d is that plus (s / tau - 1) times it
    return (layer.logit_scale(delta) / layer.far_temperature - 1) * content


def near_extra(layer: FLTAttention, xq_i: Tensor, xk_j: Tensor, delta: Tensor) -> Tensor:
    # log of the exact near weight over what the features estimate: the short-range RPE
    # and, with a far temperature, the rest of the content logit
    extra = layer.short_range(delta)
    if layer.far_temperature != 1:
        d = layer.head_channels
        content = (xq_i[..., :d] * xk_j[..., :d]).sum(-1)
        extra = extra + content_correction(layer, content, delta)
    return extra


def with_short_range(
    layer: FLTAttention, sums, xq, xk, phi_q, phi_k, row, v, pos, neighbors: Neighbors
) -> Tensor:
    # Pairs within the cutoff: their exact weights replace their random-feature estimate.
    # Everything is in units of exp(row_i) (the feature shift); an extra detached per-row
    # shift t_i >= 0 keeps the exact weights from overflowing.
    delta = neighbors.displacements(pos)
    row = row.squeeze(-1)

    def log_weight(xq_i, row_i, xk_j, delta_p):
        return (xq_i * xk_j).sum(-1) + near_extra(layer, xq_i, xk_j, delta_p) - row_i

    def message(xq_i, row_i, shift_i, phq_i, xk_j, phk_j, v_j, delta_p):
        # the exact weight, its estimate, and the exact weight of what the estimate
        # estimates (without the short-range RPE), for the ratio below
        plain = (xq_i * xk_j).sum(-1) - row_i - shift_i
        exact = torch.exp(plain + near_extra(layer, xq_i, xk_j, delta_p))
        estimate = (phq_i * phk_j).sum(-1)  # in units of exp(row), like sums
        v1 = torch.cat([v_j, v_j.new_ones(*v_j.shape[:-1], 1)], dim=-1)
        parts = [exact.unsqueeze(-1) * v1, estimate.unsqueeze(-1) * v1, plain.exp().unsqueeze(-1)]
        return torch.cat(parts, dim=-1)

    width = xq.shape[-1] + phi_q.shape[-1] + v.shape[-1]
    i, j = neighbors.index
    per_pair = 3 * layer.heads * width
    if not pair_chunking(i.numel(), per_pair):
        # small enough to hold every pair's tensors: one pass, no recomputation
        log_w = log_weight(gather(xq, i), gather(row, i), gather(xk, j), delta).detach()
        shift = row_max(log_w, i, v.shape[0]).clamp_min(0.0)  # [N, H]; every row has its self pair
        msg = message(
            *(gather(t, i) for t in (xq, row, shift, phi_q)),
            *(gather(t, j) for t in (xk, phi_k, v)),
            delta,
        )
        local = msg.new_zeros(v.shape[0], *msg.shape[1:]).index_add(0, i, msg)
    else:
        top = pair_max(
            log_weight,
            neighbors.index,
            v.shape[0],
            sources_i=(xq, row),
            sources_j=(xk,),
            pair_data=(delta,),
            per_pair=per_pair,
        )
        shift = top.clamp_min(0.0)  # [N, H]; every row has its self pair
        local = pair_sum(
            message,
            neighbors.index,
            v.shape[0],
            sources_i=(xq, row, shift, phi_q),
            sources_j=(xk, phi_k, v),
            pair_data=(delta,),
            params=tuple(layer.spectrum.parameters()),
            per_pair=per_pair,
        )
    e = v.shape[-1] + 1
    near, near_estimate, near_plain = local[..., :e], local[..., e : 2 * e], local[..., -1:]
    far = sums - near_estimate
    # The estimate's error is mostly a factor common to a query row (its features);
    # with every pair estimated it would cancel in the normalisation. Here the near pairs
    # are exact, so the row's far estimate is rescaled by how its near estimate compares
    # with the exact weights it estimates: a ratio estimator, consistent (-> 1 as m grows).
    ratio = near_plain / _near_floor(near_estimate[..., -1:], sums[..., -1:])
    total = near + far * ratio
    return total[..., :-1] / total[..., -1:]


def with_short_range_dense(layer: FLTAttention, xq, xk, phi_q, phi_k, row, v, pos, batch, sizes):
    # The estimator of with_short_range, laid out as [G, n, n] blocks for small graphs
    # (molecules): the same weights, computed with batched products instead of pair lists.
    dense, real, perm = dense_batch([xq, xk, phi_q, phi_k, row, v, pos], batch, sizes)
    dq, dk, fq, fk, drow, dv, dpos = dense
    delta = dpos.unsqueeze(2) - dpos.unsqueeze(1)  # [G, n, n, D]
    keys = (real.unsqueeze(1) & real.unsqueeze(2)).unsqueeze(-1)  # [G, n, n, 1]
    near = keys & (distance(delta) < layer.cutoff).unsqueeze(-1)
    plain = torch.einsum("gihf,gjhf->gijh", dq, dk) - drow.squeeze(-1).unsqueeze(2)
    log_w = plain + layer.short_range(delta)
    if layer.far_temperature != 1:
        d = layer.head_channels
        content = torch.einsum("gihf,gjhf->gijh", dq[..., :d], dk[..., :d])
        log_w = log_w + content_correction(layer, content, delta)
    shift = log_w.detach().masked_fill(~near, 0.0).amax(dim=2, keepdim=True).clamp_min(0.0)
    exact = torch.exp((log_w - shift).masked_fill(~near, -torch.inf))
    plain = torch.exp((plain - shift).masked_fill(~near, -torch.inf))
    # the estimates in units of exp(row) (no exp(-shift): it cancels in the ratio, and
    # could underflow); every row's estimate over its whole graph is at least 1
    estimate = torch.einsum("gihm,gjhm->gijh", fq, fk) * keys
    near_estimate = estimate * near
    ratio = plain.sum(2, keepdim=True) / _near_floor(
        near_estimate.sum(2, keepdim=True), estimate.sum(2, keepdim=True)
    )
    weights = exact + (estimate - near_estimate) * ratio
    # padded rows have no keys: a normaliser of one keeps them (and their gradients) finite
    normaliser = weights.sum(2) + (~real).unsqueeze(-1).to(weights.dtype)
    out = torch.einsum("gijh,gjhe->gihe", weights, dv) / normaliser.unsqueeze(-1)
    out = out[real]
    return torch.empty_like(out).index_copy_(0, perm, out)


def _near_floor(near: Tensor, total: Tensor) -> Tensor:
    # The ratio estimator divides by a row's estimated near weight. Where the features put
    # almost all of a row's weight on far keys that estimate can be tiny, and 1 / x then
    # overflows in the backward pass (NaN gradients); a floor relative to the row's whole
    # estimate (itself >= 1 for a real row) bounds the ratio at 1e6 and is inactive
    # otherwise; padded rows of the dense layout (no keys) get the smallest normal number.
    floor = (1e-6 * total.detach()).clamp_min(torch.finfo(near.dtype).tiny)
    return torch.maximum(near, floor)
