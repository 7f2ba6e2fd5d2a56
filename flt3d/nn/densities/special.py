r"""Special functions of the radial spectra: averages over a uniform unit vector ``u``.

:func:`_log_sphere_mean_exp` is :math:`\log \mathbb{E}_u e^{t\,u_1}` and :func:`_sphere_mean_cos`
is :math:`\mathbb{E}_u \cos(x\,u_1)`, in 1, 2 or 3 dimensions; in 2D the latter is
:math:`J_0`, which :class:`_BesselJ0` gives a derivative.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class _BesselJ0(torch.autograd.Function):
    """:math:`J_0` with its derivative :math:`-J_1` (``torch.special.bessel_j0`` has none)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return torch.special.bessel_j0(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return -grad * torch.special.bessel_j1(x)


def _log_sphere_mean_exp(t: Tensor, dim: int) -> Tensor:
    r""":math:`\log \mathbb{E}_u e^{t\,u_1}` over unit vectors ``u`` uniform in ``dim`` dimensions."""
    if dim == 1:  # log cosh
        return t + torch.log1p(torch.exp(-2 * t)) - math.log(2)
    if dim == 2:  # log I0
        return torch.log(torch.special.i0e(t)) + t
    small = t < 1e-3  # log(sinh t / t), with its series near 0
    safe = torch.where(small, torch.ones_like(t), t)
    exact = safe + torch.log(-torch.expm1(-2 * safe)) - torch.log(2 * safe)
    return torch.where(small, t.pow(2) / 6, exact)


def _sphere_mean_cos(x: Tensor, dim: int) -> Tensor:
    r""":math:`\mathbb{E}_u \cos(x\,u_1)`: ``cos`` (1D), :math:`J_0` (2D), ``sinc`` (3D)."""
    if dim == 1:
        return torch.cos(x)
    if dim == 2:
        return _BesselJ0.apply(x)
    return torch.sinc(x / math.pi)
