r"""CoulombKernel: the smoothed Coulomb potential as a spectral family (the Ewald reciprocal kernel).

.. math::
    f(\Delta) = h\,\frac{\sqrt\pi\,\sigma}{2}\,\frac{\operatorname{erf}(r/\sigma)}{r}, \quad
    r = \lVert\Delta\rVert, \qquad
    g(\xi) = h\,\frac{\sqrt\pi\,\sigma}{2}\,\frac{e^{-\pi^2\sigma^2\lVert\xi\rVert^2}}
    {\pi\lVert\xi\rVert^2},

in three dimensions: :math:`1/r` beyond the smoothing length :math:`\sigma` (the potential
between two Gaussian charge clouds), :math:`f(0) = h`, one kernel per head. It is what an Ewald
sum puts in reciprocal space, and what a mixture of Gaussians in distance only approximates
over a finite range.

Its spectrum diverges as :math:`1/\lVert\xi\rVert^2` at zero, so importance weights against a
Gaussian proposal have infinite variance; but in spherical coordinates the :math:`\xi^2` of the
volume cancels it, and :math:`\lVert\xi\rVert` is half-normal with scale
:math:`\tau = 1/(\sqrt2\,\pi\sigma)`, the direction uniform. The family therefore draws from
its own density (``sampler="density"``, the only sampler it takes): each standard node
:math:`\varepsilon` keeps its direction and has its chi-distributed norm mapped to the
half-normal quantile of the same probability, so stratified (``"quadrature"``) nodes stay
stratified, and every frequency has the constant weight :math:`h`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from flt3d.nn.spectrum import Spectrum

__all__ = ["CoulombKernel", "erf_over_x"]


def erf_over_x(x2: Tensor) -> Tensor:
    r""":math:`\frac{\sqrt\pi}{2}\operatorname{erf}(x)/x` as a function of :math:`x^2` (1 at 0),
    with finite gradients at :math:`x = 0` (the self-pairs of an exact sum)."""
    small = x2 < 1e-6
    x = torch.where(small, torch.ones_like(x2), x2).sqrt()
    value = 0.5 * math.sqrt(math.pi) * torch.special.erf(x) / x
    return torch.where(small, 1 - x2 / 3 + x2 * x2 / 10, value)


class CoulombKernel(Spectrum):
    r"""Smoothed Coulomb kernel :math:`h\,\frac{\sqrt\pi\sigma}{2}\operatorname{erf}(r/\sigma)/r`
    (see the module docstring).

    The smoothing lengths are :math:`\sigma = \ell / \mathrm{sigmoid}(\cdot) > \ell`
    (``length_scale``), as the Gaussian mixtures bound their widths: frequencies stay below
    the scale the proposal would use.

    Args:
        heads: number of heads (one kernel each).
        pos_dim: coordinate dimension; must be ``3``.
        init_scale: initial height :math:`h = f(0)` (default ``1.0``).
        **kwargs: :class:`~flt3d.nn.spectrum.Spectrum` options (``num_frequencies``,
            ``length_scale``, ``nodes``); ``sampler`` must be ``"density"`` (the default).

    Example:
        >>> import torch
        >>> k = CoulombKernel(2, 3, length_scale=2.0)
        >>> k.limit(torch.tensor([[0.0, 0.0, 0.0], [40.0, 0.0, 0.0]])).shape
        torch.Size([2, 2])
    """

    closed_form = True
    even = True
    density_draws = True

    def __init__(self, heads: int, pos_dim: int, *, init_scale: float = 1.0, **kwargs) -> None:
        if pos_dim != 3:
            raise ValueError(
                f"CoulombKernel is the 3D Coulomb potential: pos_dim must be 3, got {pos_dim}"
            )
        sampler = kwargs.setdefault("sampler", "density")
        if sampler != "density":
            raise ValueError(
                "CoulombKernel's spectrum diverges as 1/|xi|^2 at zero, so importance weights "
                f"against a proposal have infinite variance: use sampler='density', got {sampler!r}"
            )
        super().__init__(heads, pos_dim, **kwargs)
        self.init_scale = init_scale
        self.height = nn.Parameter(torch.empty(heads))
        self.length_logit = nn.Parameter(torch.empty(heads))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """``h = init_scale``; smoothing lengths spread geometrically from 1.05 to 6.3 ×
        ``length_scale`` over the heads (the first head the sharpest)."""
        self.height.fill_(self.init_scale)
        steps = torch.arange(self.heads, dtype=torch.float64) / max(self.heads - 1, 1)
        ratio = 0.95 * (0.16 / 0.95) ** steps  # length_scale / sigma
        self.length_logit.copy_(torch.log(ratio) - torch.log1p(-ratio))

    @property
    def sigma(self) -> Tensor:
        """Smoothing lengths :math:`\\sigma`, ``[H]``, in coordinate units."""
        return self.length_scale / torch.sigmoid(self.length_logit)

    def _log_density(self, xi: Tensor) -> Tensor:
        """:math:`\\log g / h` at ``xi [H, R, D]``, ``[H, R]``."""
        sigma = self.sigma.to(xi.dtype).unsqueeze(-1)
        k2 = xi.pow(2).sum(-1).clamp_min(torch.finfo(xi.dtype).tiny)
        return (
            torch.log(0.5 * math.sqrt(math.pi) * sigma)
            - math.pi**2 * sigma.pow(2) * k2
            - math.log(math.pi)
            - k2.log()
        )

    def weights(self, xi: Tensor) -> tuple[Tensor, Tensor]:
        """:math:`g/p` at given frequencies (unbounded near zero: for inspection only; the
        estimates draw from the density)."""
        ratio = torch.exp(self._log_density(xi) - self.log_proposal(xi))
        a = self.height.to(xi.dtype).unsqueeze(-1) * ratio
        return a, torch.zeros_like(a)

    def density_estimate(self, eps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        r"""Frequencies of norm half-normal with scale :math:`\tau_h = 1/(\sqrt2\pi\sigma_h)`
        in the nodes' directions; constant weights :math:`h`."""
        rho = eps.detach().to(torch.float64).norm(dim=-1, keepdim=True).clamp_min(1e-300)
        u = torch.special.gammainc(
            torch.tensor(0.5 * self.pos_dim, dtype=torch.float64), 0.5 * rho * rho
        )
        radius = math.sqrt(2.0) * torch.special.erfinv(u.clamp(max=1 - 1e-15))
        unit = (eps.detach().to(torch.float64) * (radius / rho)).to(eps.dtype)  # [H, R, D]
        tau = 1.0 / (math.sqrt(2.0) * math.pi * self.sigma.to(eps.dtype))
        xi = unit * tau.view(-1, 1, 1)
        a = self.height.to(eps.dtype).unsqueeze(-1).expand(-1, eps.shape[1])
        return xi, a, torch.zeros_like(a)

    def limit(self, delta: Tensor) -> Tensor:
        self._check_delta(delta)
        sigma = self.sigma.to(delta.dtype)
        x2 = delta.pow(2).sum(-1, keepdim=True) / sigma.pow(2)  # [..., H]
        return self.height.to(delta.dtype) * erf_over_x(x2)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", init_scale={self.init_scale}"
