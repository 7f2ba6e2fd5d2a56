r"""Radial bases shared by the heads: spherical shells in frequency (:class:`RadialMixture`) and
bumps in distance (:class:`RadialBasis`), on the common base :class:`_SharedShells`.
"""

from __future__ import annotations

import math
from abc import abstractmethod

import torch
from torch import Tensor, nn

from flt3d.nn.densities._common import _check_per_component, _logit
from flt3d.nn.densities.special import _log_sphere_mean_exp, _sphere_mean_cos
from flt3d.nn.graph import distance
from flt3d.nn.precision import floored_exp
from flt3d.nn.spectrum import Spectrum

__all__ = ["RadialMixture", "RadialBasis"]


class _SharedShells(Spectrum):
    r"""Radial families whose ``B`` basis functions are shared by the heads, weighed per head.

    :math:`f_h(\Delta) = \sum_b w_{hb}\,\phi_b(\lVert\Delta\rVert)` and
    :math:`g_h = \sum_b w_{hb}\, g_b`: subclasses give the basis :math:`\phi_b` (:meth:`basis`)
    and its importance ratios :math:`g_b/p` (:meth:`basis_ratios`); ``B`` evaluations per pair
    serve every head.
    """

    closed_form = True
    even = True

    def __init__(
        self, heads: int, pos_dim: int, *, num_components: int, init_scale: float, **kwargs
    ) -> None:
        super().__init__(heads, pos_dim, **kwargs)
        if num_components < 1:
            raise ValueError(f"num_components must be positive, got {num_components}")
        self.num_components = num_components
        self.init_scale = init_scale
        self.weight = nn.Parameter(torch.empty(heads, num_components))

    @torch.no_grad()
    def _reset_weight(self) -> None:
        self.weight.normal_(0.0, self.init_scale / math.sqrt(self.num_components))

    @abstractmethod
    def basis(self, delta: Tensor) -> Tensor:
        """The basis functions' closed forms at ``delta [..., D]``, ``[..., B]``."""

    @abstractmethod
    def basis_ratios(self, xi: Tensor) -> Tensor:
        r"""Importance ratios :math:`g_b(\xi_r)/p(\xi_r)` at ``xi [H, R, D]``, ``[H, R, B]``."""

    def weights(self, xi: Tensor) -> tuple[Tensor, Tensor]:
        a = torch.einsum("hb,hrb->hr", self.weight.to(xi.dtype), self.basis_ratios(xi))
        return a, torch.zeros_like(a)

    def limit(self, delta: Tensor) -> Tensor:
        return self.basis(delta) @ self.weight.to(delta.dtype).T

    def extra_repr(self) -> str:
        return super().extra_repr() + f", num_components={self.num_components}"


class RadialMixture(_SharedShells):
    r"""Mixture of spherical shells in frequency space: a radial basis learned through its spectrum.

    Each shell is a Gaussian of width :math:`\sigma_b` around a sphere of radius :math:`\mu_b`
    (a Gaussian :math:`\mathcal N(\mu_b u, \sigma_b^2 I)` averaged over directions ``u``); the
    heads share the shells and weigh them each in their own way, so in 3D

    .. math::
        f_h(\Delta) = \sum_b w_{hb}\, e^{-2\pi^2\sigma_b^2 r^2}\,
        \frac{\sin(2\pi\mu_b r)}{2\pi\mu_b r}, \qquad r = \lVert\Delta\rVert

    (``cos`` in 1D, :math:`J_0` in 2D): damped spherical Bessel waves, the radial basis of
    DimeNet, with learned frequencies and widths, and per-head weights. Unlike a mixture of
    centred Gaussians, :math:`f` can peak away from :math:`r = 0` (at bond lengths, say), and
    ``B`` shells cost ``B`` evaluations per pair whatever the number of heads. The bounds
    :math:`\sigma_b < s` and :math:`\mu_b < 2s` keep the importance weights bounded; narrow
    shells (long-range filters) still make them large, so this family is meant for exact mode
    first.

    Args:
        heads: number of heads (one radial function each).
        pos_dim: coordinate dimension ``D`` (1, 2 or 3).
        num_components: shells ``B`` (default ``16``).
        init_width: initial :math:`\sigma_b / s` (default ``0.1``).
        init_scale: initial weights ``N(0, init_scale^2 / B)`` (default ``1.0``).
        **kwargs: :class:`~flt3d.nn.spectrum.Spectrum` options.

    Example:
        >>> import torch
        >>> g = RadialMixture(2, 3, num_frequencies=8)
        >>> g.limit(torch.zeros(5, 3)).shape
        torch.Size([5, 2])
    """

    def __init__(
        self,
        heads: int,
        pos_dim: int,
        *,
        num_components: int = 16,
        init_width: float = 0.1,
        init_scale: float = 1.0,
        **kwargs,
    ) -> None:
        super().__init__(
            heads, pos_dim, num_components=num_components, init_scale=init_scale, **kwargs
        )
        if pos_dim > 3:
            raise ValueError(f"RadialMixture supports pos_dim 1, 2 or 3, got {pos_dim}")
        if not 0 < init_width < 1:
            raise ValueError(f"init_width must be in (0, 1), got {init_width}")
        self.init_width = float(init_width)
        self.width_logit = nn.Parameter(torch.empty(num_components))
        self.radius_logit = nn.Parameter(torch.empty(num_components))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Shell radii evenly over ``(0, 1.8 s)``, widths ``init_width * s``, weights
        ``N(0, init_scale^2 / B)``."""
        b = self.num_components
        radii = (torch.arange(b, dtype=torch.float64) + 0.5) / b * 0.9  # in units of 2 s
        self.radius_logit.copy_(_logit(radii))
        self.width_logit.fill_(float(_logit(torch.tensor(self.init_width))))
        self._reset_weight()

    @property
    def width(self) -> Tensor:
        r"""Shell widths :math:`\sigma_b`, ``[B]``."""
        return self.proposal_scale * torch.sigmoid(self.width_logit)

    @property
    def radius(self) -> Tensor:
        r"""Shell radii :math:`\mu_b`, ``[B]``."""
        return 2 * self.proposal_scale * torch.sigmoid(self.radius_logit)

    def basis_ratios(self, xi: Tensor) -> Tensor:
        sigma = self.width.to(xi.dtype)  # [B]
        mu = self.radius.to(xi.dtype)
        rho = xi.norm(dim=-1).unsqueeze(-1)  # [H, R, 1]
        d = self.pos_dim
        log_g = (
            -0.5 * (rho.pow(2) + mu.pow(2)) / sigma.pow(2)
            + _log_sphere_mean_exp(mu * rho / sigma.pow(2), d)
            - d * sigma.log()
            - 0.5 * d * math.log(2 * math.pi)
        )  # [H, R, B]
        return torch.exp(log_g - self.log_proposal(xi).unsqueeze(-1))

    def basis(self, delta: Tensor) -> Tensor:
        """The shells' closed forms at ``delta [..., D]``, ``[..., B]``."""
        self._check_delta(delta)
        r = distance(delta).unsqueeze(-1)  # [..., 1]
        sigma = self.width.to(delta.dtype)
        wave = _sphere_mean_cos(2 * math.pi * self.radius.to(delta.dtype) * r, self.pos_dim)
        return floored_exp(-2 * math.pi**2 * sigma.pow(2) * r.pow(2)) * wave


class RadialBasis(_SharedShells):
    r"""Gaussian bumps in distance, learned through their spectra (3D): SchNet's radial basis.

    Each basis function is a Gaussian of width :math:`w_b` around a sphere of radius
    :math:`c_b` (averaged over directions), scaled to peak near one:

    .. math::
        \phi_b(r) = \frac{c_b}{r}\Big(e^{-(r - c_b)^2/2w_b^2} - e^{-(r + c_b)^2/2w_b^2}\Big),
        \qquad f_h(\Delta) = \sum_b w_{hb}\, \phi_b(\lVert\Delta\rVert),

    a bump at distance :math:`c_b` like SchNet's Gaussian expansion. Its spectral density is
    :math:`g_b(\xi) = (2\pi w_b^2)^{3/2} \tfrac{2c_b^2}{w_b^2}\, e^{-2\pi^2 w_b^2 \lVert\xi\rVert^2}\,
    \mathrm{sinc}(2\pi c_b \lVert\xi\rVert)`, signed, so the importance weights are signed too.
    Widths :math:`w_b \ge` ``length_scale`` keep :math:`g/p` bounded, but thin far shells have a
    large spectral mass (about :math:`2c_b^2/w_b^2`): this family suits exact mode, where the
    closed form is used, and makes linear mode noisy.

    Args:
        heads: number of heads (one radial function each).
        pos_dim: must be 3.
        num_components: basis functions ``B``, shared by the heads (default ``16``).
        max_radius: the initial centres are evenly spaced up to it (default
            ``28 * length_scale``).
        init_width: initial widths over ``length_scale`` (default ``1.5``).
        init_scale: initial weights ``N(0, init_scale^2 / B)`` (default ``1.0``).
        **kwargs: :class:`~flt3d.nn.spectrum.Spectrum` options.

    Example:
        >>> import torch
        >>> g = RadialBasis(2, 3, num_frequencies=8)
        >>> g.limit(torch.zeros(5, 3)).shape
        torch.Size([5, 2])
    """

    density_draws = True
    shared_density_draws = True

    def __init__(
        self,
        heads: int,
        pos_dim: int,
        *,
        num_components: int = 16,
        max_radius: float | None = None,
        init_width: float = 1.5,
        init_scale: float = 1.0,
        **kwargs,
    ) -> None:
        super().__init__(
            heads, pos_dim, num_components=num_components, init_scale=init_scale, **kwargs
        )
        if pos_dim != 3:
            raise ValueError(f"RadialBasis needs pos_dim 3, got {pos_dim}")
        _check_per_component(self, num_components)
        if not init_width > 1:
            raise ValueError(
                f"init_width must be above 1 (widths >= length_scale), got {init_width}"
            )
        self.max_radius = 28 * self.length_scale if max_radius is None else float(max_radius)
        if not self.max_radius > 0:
            raise ValueError(f"max_radius must be positive, got {max_radius}")
        self.init_width = float(init_width)
        self.centre_raw = nn.Parameter(torch.empty(num_components))
        self.width_raw = nn.Parameter(torch.empty(num_components))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Centres evenly spaced on ``(0, max_radius]``, widths ``init_width * length_scale``,
        weights ``N(0, init_scale^2 / B)``."""
        b = self.num_components
        centres = torch.arange(1, b + 1, dtype=torch.float64) / b * self.max_radius
        self.centre_raw.copy_(centres.expm1().log())  # softplus^-1
        self.width_raw.fill_(math.log(math.expm1(self.init_width - 1)))
        self._reset_weight()

    @property
    def centre(self) -> Tensor:
        """Centres :math:`c_b`, ``[B]``."""
        return nn.functional.softplus(self.centre_raw)

    @property
    def width(self) -> Tensor:
        r"""Widths :math:`w_b \ge` ``length_scale``, ``[B]``."""
        return self.length_scale * (1 + nn.functional.softplus(self.width_raw))

    def basis_ratios(self, xi: Tensor) -> Tensor:
        w = self.width.to(xi.dtype)
        c = self.centre.to(xi.dtype)
        rho = xi.norm(dim=-1).unsqueeze(-1)  # [H, R, 1]
        log_k = 1.5 * torch.log(2 * math.pi * w.pow(2)) + math.log(2) + 2 * (c / w).log()
        log_envelope = log_k - 2 * math.pi**2 * w.pow(2) * rho.pow(2)
        ratio = torch.exp(log_envelope - self.log_proposal(xi).unsqueeze(-1))
        return ratio * torch.sinc(2 * c * rho)  # torch.sinc(x) = sin(pi x) / (pi x)

    def density_estimate(self, eps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        r"""Draws from each basis function's Gaussian envelope, shared by the heads.

        :math:`g_b(\xi) = \tfrac{2c_b^2}{w_b^2}\,\mathcal N(\xi; 0, \tau_b^2 I)\,
        \mathrm{sinc}(2\pi c_b\lVert\xi\rVert)` with :math:`\tau_b = 1/(2\pi w_b)`: ``R / B``
        frequencies :math:`\xi = \tau_b\varepsilon` per basis function, weight
        :math:`B\, w_{hb}\, \tfrac{2c_b^2}{w_b^2}\,\mathrm{sinc}(2\pi c_b\lVert\xi\rVert)`.
        """
        b = self.num_components
        per = self.num_frequencies // b
        w = self.width.to(eps.dtype)
        c = self.centre.to(eps.dtype)
        eps = eps.reshape(b, per, 3)
        xi = eps / (2 * math.pi * w).view(b, 1, 1)
        ratio = (2 * c.pow(2) / w.pow(2)).view(b, 1) * torch.sinc(2 * c.view(b, 1) * xi.norm(dim=-1))
        a = b * torch.einsum("hb,bk->hbk", self.weight.to(eps.dtype), ratio).reshape(self.heads, -1)
        return xi.reshape(1, b * per, 3), a, torch.zeros_like(a)

    def basis(self, delta: Tensor) -> Tensor:
        """The basis functions at ``delta [..., 3]``, ``[..., B]``."""
        self._check_delta(delta)
        r = distance(delta).unsqueeze(-1)  # [..., 1]
        w = self.width.to(delta.dtype)
        c = self.centre.to(delta.dtype)
        # (c / r) (e^{-(r-c)^2/2w^2} - e^{-(r+c)^2/2w^2}) = (c / r) e^{-(r-c)^2/2w^2} (1 - e^{-2rc/w^2})
        t = 2 * r * c / w.pow(2)
        safe = torch.where(t > 1e-6, r, torch.ones_like(r))
        ratio = torch.where(t > 1e-6, -torch.expm1(-t) * c / safe, 2 * c.pow(2) / w.pow(2))
        return floored_exp(-0.5 * (r - c).pow(2) / w.pow(2)) * ratio
