"""The dense weight matrix of :class:`~flt3d.nn.flt_attention.FLTAttention` on one graph.

Exact or estimated with the stored draw, as :meth:`FLTAttention.kernel` documents: for tests
and plots on small inputs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from flt3d.nn.flt_checks import check_inputs
from flt3d.nn.flt_features import kernel_exponents
from flt3d.nn.graph import center_pos, check_batch, check_finite, distance

if TYPE_CHECKING:
    from flt3d.nn.flt_attention import FLTAttention

__all__ = ["dense_weights"]


def dense_weights(layer: FLTAttention, q: Tensor, k: Tensor, pos: Tensor) -> Tensor:
    """The unnormalised weights ``[N, N, H]`` of ``layer`` on one graph (no causal mask)."""
    check_inputs(layer, q, k, k, pos)
    check_finite(pos)
    batch, num_graphs = check_batch(None, q.shape[0], q.device)
    pos = center_pos(pos.to(q.dtype), batch, num_graphs)
    delta = pos.unsqueeze(1) - pos.unsqueeze(0)
    logits = torch.einsum("ihd,jhd->ijh", q, k) / layer.head_channels**0.5
    scale = layer.logit_scale(delta)
    if scale is not None:
        logits = logits * scale
    if layer.attention == "exact":
        rpe = layer.rpe(delta)
        return torch.exp(logits + rpe) if layer.mask == "exp" else torch.exp(logits) * rpe
    _, _, psi, eq, ek = kernel_exponents(
        layer, q, k, pos, None, layer.projection, batch, num_graphs
    )
    w = torch.logsumexp(eq.unsqueeze(1) + ek.unsqueeze(0), dim=-1).exp()
    if psi is not None and layer.mask == "mul":
        w = w * layer.rpe(delta)
    if layer.cutoff is not None:
        near = (distance(delta) < layer.cutoff).unsqueeze(-1)
        rpe = layer.rpe(delta)
        content = logits if scale is None else logits / scale * layer.far_temperature
        plain = torch.exp(content + rpe - layer.short_range(delta))
        ratio = (plain * near).sum(1, keepdim=True) / (w * near).sum(1, keepdim=True)
        w = torch.where(near, torch.exp(logits + rpe), w * ratio)
    return w
