r"""Spectral density families :math:`g_\theta`, one density per head.

Each family learns :math:`g_\theta` and reads it out at the layer's frequencies as importance
weights :math:`a_r = g_\theta(\xi_r)/p(\xi_r)`. Widths are bounded by the proposal's
(:math:`\sigma \le s`), so the weights stay bounded and the estimator's variance with them.
"""

from __future__ import annotations

import math
from abc import abstractmethod

import torch
from torch import Tensor, nn

from flt3d.nn.coulomb import CoulombKernel
from flt3d.nn.graph import distance
from flt3d.nn.spectrum import Spectrum, cauchy_log_density

__all__ = [
    "GaussianMixture",
    "IsotropicMixture",
    "GaussianKernel",
    "LaplaceKernel",
    "LocalRPE",
    "MLPSpectrum",
    "RadialMixture",
    "RadialBasis",
    "SPECTRA",
    "make_spectrum",
]


def _logit(p: Tensor) -> Tensor:
    return torch.log(p) - torch.log1p(-p)


def _check_per_component(spectrum: Spectrum, num_components: int) -> None:
    if spectrum.sampler == "density" and spectrum.num_frequencies % num_components:
        raise ValueError(
            f"sampler='density' draws num_frequencies / num_components frequencies per "
            f"component: num_frequencies ({spectrum.num_frequencies}) must be a multiple of "
            f"num_components ({num_components})"
        )


class GaussianMixture(Spectrum):
    r"""Gaussian-mixture spectral density (anisotropic by default).

    .. math::
        g(\xi) = \sum_b w_b\, \mathcal{N}(\xi; \mu_b, \mathrm{diag}\,\sigma_b^2), \qquad
        f(\Delta) = \sum_b w_b\, e^{-2\pi^2 \Delta^\top \mathrm{diag}(\sigma_b^2) \Delta}
        \cos(2\pi\mu_b\cdot\Delta)

    (plus :math:`\sin(2\pi\mu_b\cdot\Delta)` when ``directional``). The widths are
    :math:`\sigma_b = s\,\mathrm{sigmoid}(\cdot) < s`, so spatial decay lengths are at least
    ``length_scale`` and the importance weights are bounded.

    Args:
        heads: number of heads.
        pos_dim: coordinate dimension ``D``.
        num_components: mixture components ``B`` per head (default ``4``).
        isotropic: zero means and one scalar width per component, so :math:`f` depends on
            :math:`\lVert\Delta\rVert` only (default ``False``).
        directional: add the odd part, a direction-dependent RPE (default ``False``).
        init_scale: initial total weight :math:`\sum_b w_b = f(0)` (default ``1.0``).
        **kwargs: :class:`~flt3d.nn.spectrum.Spectrum` options (``num_frequencies``,
            ``length_scale``, ``learnable_frequencies``).

    Example:
        >>> import torch
        >>> g = GaussianMixture(2, 3, num_frequencies=8)
        >>> g(torch.zeros(5, 3)).shape
        torch.Size([5, 2])
    """

    closed_form = True
    density_draws = True

    def __init__(
        self,
        heads: int,
        pos_dim: int,
        *,
        num_components: int = 4,
        isotropic: bool = False,
        directional: bool = False,
        init_scale: float = 1.0,
        **kwargs,
    ) -> None:
        super().__init__(heads, pos_dim, **kwargs)
        if num_components < 1:
            raise ValueError(f"num_components must be positive, got {num_components}")
        if isotropic and directional:
            raise ValueError("an isotropic mixture has zero means and cannot be directional")
        _check_per_component(self, num_components)
        self.num_components = num_components
        self.isotropic = isotropic
        self.directional = directional
        self.init_scale = init_scale
        width_dim = 1 if isotropic else pos_dim
        self.weight = nn.Parameter(torch.empty(heads, num_components))
        self.width_logit = nn.Parameter(torch.empty(heads, num_components, width_dim))
        # means are stored in units of the proposal scale s, so parameter steps are scale-free
        if isotropic:
            self.register_buffer("mean_unit", torch.zeros(heads, num_components, pos_dim))
        else:
            self.mean_unit = nn.Parameter(torch.empty(heads, num_components, pos_dim))
        self.reset_parameters()

    @property
    def even(self) -> bool:
        """Even unless ``directional``."""
        return not self.directional

    def _check_num_frequencies(self) -> None:
        _check_per_component(self, self.num_components)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Equal weights; widths spread geometrically from 0.95 s to 0.15 s over all heads and
        components (head-major: the first head is the most local, the last the most global);
        means ~ N(0, (s/10)^2).

        Heads with different ranges from the start learn geometry much faster than heads that
        all start alike: on the QM9 sample (FLTNet, U0, 90 CPU s, one seed) the test MAE went
        from 725 meV with equal widths to 618 and 659 meV in two runs with this spread.
        """
        self.weight.fill_(self.init_scale / self.num_components)
        h, b = self.heads, self.num_components
        steps = torch.arange(h * b, dtype=torch.float64) / max(h * b - 1, 1)
        ratios = (0.95 * (0.15 / 0.95) ** steps).view(h, b, 1)
        self.width_logit.copy_(_logit(ratios).expand_as(self.width_logit))
        if not self.isotropic:
            self.mean_unit.normal_(0.0, 0.1)

    @property
    def width(self) -> Tensor:
        """Component widths :math:`\\sigma_b`, ``[H, B, 1 or D]``."""
        return self.proposal_scale * torch.sigmoid(self.width_logit)

    @property
    def mean(self) -> Tensor:
        r"""Component means :math:`\mu_b`, ``[H, B, D]``."""
        return self.proposal_scale * self.mean_unit

    def weights(self, xi: Tensor) -> tuple[Tensor, Tensor]:
        sigma = self.width.to(xi.dtype)
        diff = (xi.unsqueeze(1) - self.mean.to(xi.dtype).unsqueeze(2)) / sigma.unsqueeze(2)
        log_sigma = sigma.log().sum(-1) * (self.pos_dim if self.isotropic else 1)
        log_n = (
            -0.5 * diff.pow(2).sum(-1)
            - log_sigma.unsqueeze(-1)
            - 0.5 * self.pos_dim * math.log(2 * math.pi)
        )
        ratio = torch.exp(log_n - self.log_proposal(xi).unsqueeze(1))
        a = torch.einsum("hb,hbr->hr", self.weight.to(xi.dtype), ratio)
        return a, (a if self.directional else torch.zeros_like(a))

    def density_estimate(self, eps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        r"""Stratified draws from each component, :math:`\xi = \mu_b + \sigma_b\varepsilon`:
        ``R / B`` frequencies per component, weight :math:`B w_b` each (constant)."""
        h, b = self.heads, self.num_components
        per = self.num_frequencies // b
        eps = eps.reshape(h, b, per, self.pos_dim)
        xi = self.mean.to(eps.dtype).unsqueeze(2) + self.width.to(eps.dtype).unsqueeze(2) * eps
        a = (b * self.weight.to(eps.dtype)).repeat_interleave(per, dim=1)
        return xi.reshape(h, b * per, self.pos_dim), a, (a if self.directional else torch.zeros_like(a))

    def limit(self, delta: Tensor) -> Tensor:
        self._check_delta(delta)
        sigma = self.width.to(delta.dtype)
        if self.isotropic:  # zero means: a sum of Gaussians of the distance
            r2 = delta.pow(2).sum(-1)[..., None, None]  # [..., 1, 1]
            envelope = torch.exp(-2 * math.pi**2 * r2 * sigma.squeeze(-1).pow(2))
            return (self.weight.to(delta.dtype) * envelope).sum(-1)
        d = delta.unsqueeze(-2).unsqueeze(-2)  # [..., 1, 1, D]
        quad = (d.pow(2) * sigma.pow(2)).sum(-1)  # [..., H, B]
        phase = 2 * math.pi * (d * self.mean.to(delta.dtype)).sum(-1)
        wave = phase.cos() + (phase.sin() if self.directional else 0.0)
        envelope = torch.exp(-2 * math.pi**2 * quad)
        return (self.weight.to(delta.dtype) * envelope * wave).sum(-1)

    def extra_repr(self) -> str:
        return (
            super().extra_repr()
            + f", num_components={self.num_components}, isotropic={self.isotropic}"
            + f", directional={self.directional}"
        )


class IsotropicMixture(GaussianMixture):
    r"""Isotropic Gaussian mixture: :math:`f(\Delta) = \sum_b w_b e^{-2\pi^2\sigma_b^2\lVert\Delta\rVert^2}`.

    :math:`f` depends on :math:`\lVert\Delta\rVert` only, the rotation-invariant choice for
    molecules (:math:`\hat f` is rotation invariant in expectation over the frequencies).
    Same options as :class:`GaussianMixture` without ``isotropic`` and ``directional``.
    """

    def __init__(self, heads: int, pos_dim: int, **kwargs) -> None:
        super().__init__(heads, pos_dim, isotropic=True, **kwargs)


class GaussianKernel(GaussianMixture):
    r"""Shift-invariant Gaussian kernel :math:`f(\Delta) = h\,e^{-\lVert\Delta\rVert^2/(2\ell^2)}`.

    A one-component isotropic mixture: :math:`\sigma = 1/(2\pi\ell)`, learnable ``h`` and
    :math:`\ell \ge` ``length_scale``.
    """

    def __init__(self, heads: int, pos_dim: int, **kwargs) -> None:
        super().__init__(heads, pos_dim, isotropic=True, num_components=1, **kwargs)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """``h = init_scale`` and ``l = 2 * length_scale``."""
        self.weight.fill_(self.init_scale)
        self.width_logit.fill_(float(_logit(torch.tensor(0.5))))


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


class MLPSpectrum(Spectrum):
    r"""A small MLP density for the general case: :math:`g_\theta(\xi) = p(\xi)\,\mathrm{MLP}_\theta(\xi/s)`.

    The MLP returns both the even weight ``a`` and the odd (directional) weight ``b`` of every
    head. There is no closed form; :meth:`limit` is a large Monte Carlo sum.

    Args:
        heads: number of heads.
        pos_dim: coordinate dimension ``D``.
        hidden_channels: MLP width (default ``32``).
        init_scale: initial constant ``a`` (default ``1.0``): :math:`f` starts as a Gaussian of
            width ``length_scale``.
        **kwargs: :class:`~flt3d.nn.spectrum.Spectrum` options.
    """

    def __init__(
        self,
        heads: int,
        pos_dim: int,
        *,
        hidden_channels: int = 32,
        init_scale: float = 1.0,
        **kwargs,
    ) -> None:
        super().__init__(heads, pos_dim, **kwargs)
        self.init_scale = init_scale
        self.net = nn.Sequential(
            nn.Linear(pos_dim, hidden_channels),
            nn.SiLU(),
            nn.Linear(hidden_channels, hidden_channels),
            nn.SiLU(),
            nn.Linear(hidden_channels, 2 * heads),
        )
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Default layer init, then a small last layer whose bias gives ``a = init_scale``."""
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
        last = self.net[-1]
        last.weight.mul_(0.1)
        last.bias.zero_()
        last.bias[: self.heads] = self.init_scale

    def weights(self, xi: Tensor) -> tuple[Tensor, Tensor]:
        out = self.net(xi / self.proposal_scale)  # [H, R, 2H]: head h reads outputs h, H + h
        idx = torch.arange(self.heads, device=xi.device)
        return out[idx, :, idx], out[idx, :, self.heads + idx]


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
        return torch.exp(-2 * math.pi**2 * sigma.pow(2) * r.pow(2)) * wave


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
        return torch.exp(-0.5 * (r - c).pow(2) / w.pow(2)) * ratio


SPECTRA: dict[str, type[Spectrum]] = {
    "gaussian_mixture": GaussianMixture,
    "isotropic_mixture": IsotropicMixture,
    "gaussian": GaussianKernel,
    "laplace": LaplaceKernel,
    "local": LocalRPE,
    "mlp": MLPSpectrum,
    "radial_mixture": RadialMixture,
    "radial_basis": RadialBasis,
    "coulomb": CoulombKernel,
}


def make_spectrum(name: str | None, heads: int, pos_dim: int, **kwargs) -> Spectrum | None:
    """Build a spectral density by name (``None`` means no RPE).

    Args:
        name: one of :data:`SPECTRA` (``"gaussian_mixture"``, ``"isotropic_mixture"``,
            ``"gaussian"``, ``"laplace"``, ``"local"``, ``"mlp"``, ``"radial_mixture"``,
            ``"radial_basis"``, ``"coulomb"``) or ``None``.
        heads: number of heads.
        pos_dim: coordinate dimension.
        **kwargs: options of the chosen family.
    """
    if name is None:
        return None
    if name not in SPECTRA:
        raise ValueError(f"spectrum must be one of {sorted(SPECTRA)} or None, got {name!r}")
    return SPECTRA[name](heads, pos_dim, **kwargs)
