r"""LaplaceKernel: :math:`h\,e^{-\lVert\Delta\rVert/\ell}`, with a Cauchy law as its spectrum."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from flt3d.nn.spectrum import Spectrum, cauchy_log_density

__all__ = ["LaplaceKernel"]


class LaplaceKernel(Spectrum):
    r"""Shift-invariant Laplace kernel :math:`f(\Delta) = h\,e^{-\lVert\Delta\rVert/\ell}`.

    Its spectral density is a multivariate Cauchy law of scale :math:`\gamma = 1/(2\pi\ell)`;
    its heavy tails call for a Cauchy proposal of scale :math:`s \ge \gamma`, which keeps the
    weights bounded by :math:`h (s/\gamma)^D`.

    Args:
        heads: number of heads.
        pos_dim: coordinate dimension ``D``.
        init_scale: initial height ``h`` (default ``1.0``).
        **kwargs: :class:`~flt3d.nn.spectrum.Spectrum` options.
    """

    closed_form = True
    even = True

    def __init__(self, heads: int, pos_dim: int, *, init_scale: float = 1.0, **kwargs) -> None:
        kwargs.setdefault("proposal", "cauchy")
        super().__init__(heads, pos_dim, **kwargs)
        self.init_scale = init_scale
        self.height = nn.Parameter(torch.empty(heads))
        self.scale_logit = nn.Parameter(torch.empty(heads))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """``h = init_scale`` and ``l = 2 * length_scale``."""
        self.height.fill_(self.init_scale)
        self.scale_logit.zero_()

    @property
    def gamma(self) -> Tensor:
        """Cauchy scales :math:`\\gamma = 1/(2\\pi\\ell)`, ``[H]``."""
        return self.proposal_scale * torch.sigmoid(self.scale_logit)

    def weights(self, xi: Tensor) -> tuple[Tensor, Tensor]:
        gamma = self.gamma.to(xi.dtype).view(-1, 1)
        log_g = cauchy_log_density(xi, gamma)
        a = self.height.to(xi.dtype).view(-1, 1) * torch.exp(log_g - self.log_proposal(xi))
        return a, torch.zeros_like(a)

    def limit(self, delta: Tensor) -> Tensor:
        self._check_delta(delta)
        r = delta.norm(dim=-1, keepdim=True)
        return self.height.to(delta.dtype) * torch.exp(
            -2 * math.pi * self.gamma.to(delta.dtype) * r
        )
