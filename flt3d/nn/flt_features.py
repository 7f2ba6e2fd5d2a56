"""Random-feature inputs of :class:`~flt3d.nn.flt_attention.FLTAttention` in linear mode.

The kernel's inputs (queries and keys scaled, with the low-rank RPE features appended for
``mask="exp"``), their random-feature exponents, and the ``mul`` mask's positive factors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from flt3d.nn.random_features import feature_exponents, shrunk_exponents

if TYPE_CHECKING:
    from flt3d.nn.flt_attention import FLTAttention

__all__ = ["kernel_exponents", "mul_factors", "with_mul_factors"]


def _kernel_inputs(layer: FLTAttention, q: Tensor, k: Tensor, pos: Tensor, frequencies):
    """The scaled queries and keys, with the low-rank RPE features appended (exp mask)."""
    scale = layer.head_channels**-0.25 * layer.far_temperature**0.5
    xq, xk = q * scale, k * scale
    low_rank = layer.low_rank
    psi = None if low_rank is None else low_rank.features(pos, frequencies)
    if psi is not None and layer.mask == "exp":
        xq = torch.cat([xq, psi[0]], dim=-1)
        xk = torch.cat([xk, psi[1]], dim=-1)
    return xq, xk, psi


def kernel_exponents(
    layer: FLTAttention, q, k, pos, frequencies, projection, batch, num_graphs, sizes=None
):
    """``(xq, xk, psi, eq, ek)``: the random-feature exponents of queries and keys, with their
    inputs and the RPE features: shrunk per graph (:func:`~flt3d.nn.random_features.
    shrunk_exponents`), or plain FAVOR+ when causal (a graph's statistics would let a token
    see its successors)."""
    xq, xk, psi = _kernel_inputs(layer, q, k, pos, frequencies)
    if layer.causal:
        eq, ek = feature_exponents(xq, projection), feature_exponents(xk, projection)
    else:
        eq, ek = shrunk_exponents(xq, xk, projection, batch, num_graphs, sizes=sizes)
    return xq, xk, psi, eq, ek


def mul_factors(layer: FLTAttention, psi, n: int, frequencies: Tensor | None):
    """The mul mask's positive-sum factors ``[sqrt(c), psi]``: c + f_hat = psi_q . psi_k."""
    if psi is None or layer.mask != "mul":
        return None, None
    shift = layer.mul_shift(frequencies).to(psi[0].dtype).sqrt().expand(n, -1).unsqueeze(-1)
    return torch.cat([shift, psi[0]], dim=-1), torch.cat([shift, psi[1]], dim=-1)


def with_mul_factors(phi_q: Tensor, phi_k: Tensor, outer) -> tuple[Tensor, Tensor]:
    """The kernel features times the :func:`mul_factors` (an outer product), if any."""
    if outer[0] is None:
        return phi_q, phi_k
    phi_q = (phi_q.unsqueeze(-1) * outer[0].unsqueeze(-2)).flatten(-2)
    phi_k = (phi_k.unsqueeze(-1) * outer[1].unsqueeze(-2)).flatten(-2)
    return phi_q, phi_k
