r"""LocalRPE: a smoothed box mask on :math:`\lVert\Delta\rVert_\infty \le v`, ``v`` learnable."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from flt3d.nn.spectrum import Spectrum

__all__ = ["LocalRPE"]


class LocalRPE(Spectrum):
    r"""Local RPE: a mask concentrated on :math:`\lVert\Delta\rVert_\infty \le v`, ``v`` learnable.

    A box of half-width ``v`` has the spectrum :math:`2v\,\mathrm{sinc}(2v\xi)` per axis. The
    box is smoothed by a Gaussian of width :math:`\tau =` ``length_scale``, which multiplies the
    spectrum by :math:`e^{-2\pi^2\tau^2\xi^2}`, exactly the proposal's decay, so the weights
    are bounded sincs:

    .. math::
        f(\Delta) = h \prod_d \tfrac12\Big[\mathrm{erf}\tfrac{v + \Delta_d}{\sqrt2\tau}
        + \mathrm{erf}\tfrac{v - \Delta_d}{\sqrt2\tau}\Big].

    Args:
        heads: number of heads.
        pos_dim: coordinate dimension ``D``.
        radius: initial half-width ``v`` in coordinate units (default ``4 * length_scale``).
        init_scale: initial height ``h`` (default ``1.0``).
        **kwargs: :class:`~flt3d.nn.spectrum.Spectrum` options.
    """

    closed_form = True
    even = True

    def __init__(
        self,
        heads: int,
        pos_dim: int,
        *,
        radius: float | None = None,
        init_scale: float = 1.0,
        **kwargs,
    ) -> None:
        super().__init__(heads, pos_dim, **kwargs)
        self.init_radius = 4 * self.length_scale if radius is None else float(radius)
        if not self.init_radius > 0:
            raise ValueError(f"radius must be positive, got {radius}")
        self.init_scale = init_scale
        self.height = nn.Parameter(torch.empty(heads))
        self.radius_raw = nn.Parameter(torch.empty(heads))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """``h = init_scale`` and ``v = radius``."""
        self.height.fill_(self.init_scale)
        self.radius_raw.fill_(math.log(math.expm1(self.init_radius)))

    @property
    def radius(self) -> Tensor:
        """Half-widths ``v``, ``[H]``."""
        return nn.functional.softplus(self.radius_raw)

    def weights(self, xi: Tensor) -> tuple[Tensor, Tensor]:
        v = self.radius.to(xi.dtype).view(-1, 1, 1)
        per_axis = 2 * v * torch.sinc(2 * v * xi) * math.sqrt(2 * math.pi) * self.proposal_scale
        a = self.height.to(xi.dtype).view(-1, 1) * per_axis.prod(-1)
        return a, torch.zeros_like(a)

    def limit(self, delta: Tensor) -> Tensor:
        self._check_delta(delta)
        v = self.radius.to(delta.dtype)
        d = delta.unsqueeze(-2)  # [..., 1, D]
        c = math.sqrt(2) * self.length_scale
        box = 0.5 * (torch.erf((v[:, None] + d) / c) + torch.erf((v[:, None] - d) / c))
        return self.height.to(delta.dtype) * box.prod(-1)
