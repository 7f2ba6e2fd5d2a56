r"""The spectral RPE: frequencies, importance weights and the low-rank features they give.

A relative positional encoding written through its Fourier spectrum,
:math:`f(\Delta) = \int g(\xi)\, e^{2\pi i \xi\cdot\Delta} d\xi`, is estimated with ``R``
frequencies :math:`\xi_r \sim p` as

.. math::
    \hat f(\Delta) = \frac{1}{R} \sum_r a_r \cos(2\pi\xi_r\cdot\Delta) + b_r \sin(2\pi\xi_r\cdot\Delta),

where :math:`a_r` is the importance weight :math:`g(\xi_r)/p(\xi_r)` and :math:`b_r` its odd
(directional) counterpart. Because the cosine of a difference splits into products,
:math:`\hat f(r_i - r_j) = \psi_Q(r_i)\cdot\psi_K(r_j)` with ``2R`` features per token.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn

from flt3d.nn.samplers import NODES, FrequencySampler

__all__ = ["Spectrum", "spectral_features", "spectral_rpe"]


def _safe_norm(a: Tensor, b: Tensor) -> Tensor:
    eps = torch.finfo(a.dtype).eps ** 2
    return (a.pow(2) + b.pow(2)).clamp_min(eps).sqrt()


def spectral_features(pos: Tensor, xi: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    r"""Low-rank factors of :math:`\hat f`: :math:`\psi_Q(r_i)\cdot\psi_K(r_j) = \hat f(r_i - r_j)`.

    The magnitude :math:`\rho_r = \sqrt{a_r^2 + b_r^2}` is split evenly, :math:`\sqrt{\rho_r}` on
    each side, so neither side carries the whole amplitude (which keeps the variance of the
    random features that ride on top of these small).

    Args:
        pos: coordinates, ``[N, D]``.
        xi: frequencies, ``[H, R, D]``.
        a: even weights, ``[H, R]``.
        b: odd weights, ``[H, R]``.

    Returns:
        ``(psi_q, psi_k)``, each ``[N, H, 2R]``.
    """
    theta = 2 * math.pi * torch.einsum("nd,hrd->nhr", pos, xi.to(pos.dtype))
    if xi.shape[0] == 1 and a.shape[0] > 1:  # frequencies shared by the heads
        theta = theta.expand(-1, a.shape[0], -1)
    cos, sin = theta.cos(), theta.sin()
    rho = _safe_norm(a, b)
    scale = rho.sqrt() / math.sqrt(xi.shape[1])
    a_, b_ = a / rho, b / rho
    psi_q = torch.cat([a_ * cos + b_ * sin, a_ * sin - b_ * cos], dim=-1)
    psi_k = torch.cat([cos, sin], dim=-1)
    scale = torch.cat([scale, scale], dim=-1)
    return psi_q * scale, psi_k * scale


def spectral_rpe(delta: Tensor, xi: Tensor, a: Tensor, b: Tensor) -> Tensor:
    r"""Evaluate :math:`\hat f(\Delta)` directly from displacements.

    Args:
        delta: displacements, ``[..., D]``.
        xi: frequencies, ``[H, R, D]``.
        a: even weights, ``[H, R]``.
        b: odd weights, ``[H, R]``.

    Returns:
        ``[..., H]``.
    """
    theta = 2 * math.pi * torch.einsum("...d,hrd->...hr", delta, xi.to(delta.dtype))
    return (a * theta.cos() + b * theta.sin()).mean(dim=-1)


class Spectrum(nn.Module, ABC):
    r"""Base class of the spectral densities :math:`g_\theta`, one per head.

    Subclasses define :meth:`weights`, the importance weights :math:`(a, b)` at given
    frequencies, and optionally :meth:`limit`, the closed form :math:`f(\Delta)` that
    :math:`\hat f` tends to as ``R`` grows.

    Args:
        heads: number of heads (one density each).
        pos_dim: dimension ``D`` of the coordinates.
        num_frequencies: ``R``, frequencies per head (default ``16``).
        length_scale: shortest length the RPE resolves, in coordinate units (default ``1.0``);
            the proposal :math:`p = \mathcal{N}(0, s^2 I)` has :math:`s = 1/(2\pi\,\ell)`.
        learnable_frequencies: learn the frequencies as parameters instead of keeping the
            draw from the proposal as a buffer (default ``False``).
        proposal: ``"gaussian"`` or ``"cauchy"`` (heavy-tailed, for heavy-tailed densities).
        sampler: where the frequencies come from: ``"proposal"`` (:math:`\xi = s\varepsilon`,
            importance weights :math:`g/p`; every family) or ``"density"`` (drawn from
            :math:`g` itself by reparameterisation, constant or bounded weights; families with
            :attr:`density_draws`) (default ``"proposal"``).
        nodes: layout of the base draws :math:`\varepsilon`, ``"iid"``, ``"orthogonal"`` or
            ``"quadrature"`` (see :mod:`flt3d.nn.samplers`) (default ``"iid"``).

    The stored draw (the buffer :attr:`frequencies`, in proposal units :math:`s\varepsilon`)
    is what every estimate uses unless fresh frequencies are passed in: layers draw fresh ones
    with :meth:`draw_frequencies` at every training step and keep the stored draw for
    evaluation (see :class:`~flt3d.nn.FLTAttention`).
    """

    proposals = ("gaussian", "cauchy")
    #: whether :meth:`limit` is a closed form (cheap enough to evaluate on every pair)
    closed_form = False
    #: whether :math:`f(-\Delta) = f(\Delta)` for every parameter value (no odd part)
    even = False
    #: whether the family can draw its frequencies from its own density (``sampler="density"``)
    density_draws = False
    #: whether, with ``sampler="density"``, one set of frequencies serves all heads
    shared_density_draws = False
    samplers = ("proposal", "density")

    def __init__(
        self,
        heads: int,
        pos_dim: int,
        *,
        num_frequencies: int = 16,
        length_scale: float = 1.0,
        learnable_frequencies: bool = False,
        proposal: str = "gaussian",
        sampler: str = "proposal",
        nodes: str = "iid",
    ) -> None:
        super().__init__()
        if heads < 1 or pos_dim < 1 or num_frequencies < 1:
            raise ValueError(
                f"heads, pos_dim and num_frequencies must be positive, "
                f"got {heads}, {pos_dim}, {num_frequencies}"
            )
        if not length_scale > 0:
            raise ValueError(f"length_scale must be positive, got {length_scale}")
        if proposal not in self.proposals:
            raise ValueError(f"proposal must be one of {self.proposals}, got {proposal!r}")
        if sampler not in self.samplers:
            raise ValueError(f"sampler must be one of {self.samplers}, got {sampler!r}")
        if nodes not in NODES:
            raise ValueError(f"nodes must be one of {NODES}, got {nodes!r}")
        if sampler == "density" and not self.density_draws:
            raise ValueError(
                f"{type(self).__name__} cannot draw from its own density; use sampler='proposal'"
            )
        if sampler == "density" and learnable_frequencies:
            raise ValueError("learnable_frequencies needs sampler='proposal'")
        if proposal == "cauchy" and nodes != "iid":
            raise ValueError(f"a Cauchy proposal needs nodes='iid', got {nodes!r}")
        self.heads = heads
        self.pos_dim = pos_dim
        self.num_frequencies = num_frequencies
        self.length_scale = float(length_scale)
        self.proposal = proposal
        self.sampler = sampler
        self.frequency_sampler = FrequencySampler(nodes)
        xi = self.draw_frequencies()
        if learnable_frequencies:
            self.frequencies = nn.Parameter(xi)
        else:
            self.register_buffer("frequencies", xi)

    @property
    def proposal_scale(self) -> float:
        """Scale ``s`` of the proposal, ``1 / (2 pi length_scale)``."""
        return 1.0 / (2 * math.pi * self.length_scale)

    @property
    def frequency_groups(self) -> int:
        """Independent frequency sets: one per head, or one for all (shared density draws)."""
        return 1 if self.sampler == "density" and self.shared_density_draws else self.heads

    def sample_proposal(self, num: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``[heads, num, pos_dim]`` i.i.d. frequencies from the proposal."""
        shape = (self.heads, num, self.pos_dim)
        z = torch.randn(shape, generator=generator)
        if self.proposal == "cauchy":
            w = torch.randn((self.heads, num, 1), generator=generator).abs().clamp_min(1e-12)
            z = z / w
        return z * self.proposal_scale

    def draw_frequencies(self, *, generator: torch.Generator | None = None) -> Tensor:
        """A fresh draw of the layer's frequencies in proposal units, ``[groups, R, D]``.

        The nodes follow the ``nodes`` option; with the Cauchy proposal they are i.i.d.
        """
        if self.proposal == "cauchy":
            return self.sample_proposal(self.num_frequencies, generator=generator)
        z = self.frequency_sampler.draw(
            self.frequency_groups, self.num_frequencies, self.pos_dim, generator=generator
        )
        return z * self.proposal_scale

    def log_proposal(self, xi: Tensor) -> Tensor:
        """Log density of the proposal at ``xi [..., D]``, ``[...]``."""
        s, d = self.proposal_scale, self.pos_dim
        if self.proposal == "gaussian":
            return (
                -0.5 * xi.pow(2).sum(-1) / s**2 - d * math.log(s) - 0.5 * d * math.log(2 * math.pi)
            )
        return cauchy_log_density(xi, s)

    @torch.no_grad()
    def redraw_frequencies(self, *, generator: torch.Generator | None = None) -> None:
        """Replace the stored draw by a fresh one (:meth:`draw_frequencies`), in place."""
        xi = self.draw_frequencies(generator=generator)
        self.frequencies.copy_(xi.to(self.frequencies))

    @torch.no_grad()
    def set_num_frequencies(self, num: int, *, generator: torch.Generator | None = None) -> None:
        """Use ``num`` frequencies from now on, with a fresh draw: e.g. more at evaluation than
        in training, for a smaller estimator error at a cost linear in ``num``.

        Raises:
            ValueError: if ``num`` is not positive, or the frequencies are learnable
                parameters (their number is part of the model).
        """
        if isinstance(self.frequencies, nn.Parameter):
            raise ValueError("learnable frequencies cannot change their number")
        if not (isinstance(num, int) and num >= 1):
            raise ValueError(f"num_frequencies must be a positive int, got {num!r}")
        previous, self.num_frequencies = self.num_frequencies, num
        try:
            self._check_num_frequencies()
        except ValueError:
            self.num_frequencies = previous
            raise
        self.frequencies = self.draw_frequencies(generator=generator).to(self.frequencies)

    def _check_num_frequencies(self) -> None:
        """Families with per-component draws check that ``num_frequencies`` divides evenly."""

    @abstractmethod
    def weights(self, xi: Tensor) -> tuple[Tensor, Tensor]:
        """Importance weights ``(a, b)``, each ``[H, R]``, at frequencies ``xi [H, R, D]``."""

    def density_estimate(self, eps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Frequencies drawn from the density itself and their weights, from standard nodes
        ``eps [groups, R, D]``: ``(xi [groups, R, D], a [H, R], b [H, R])``."""
        raise NotImplementedError(f"{type(self).__name__} has no density draws")

    def estimate(self, frequencies: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        r"""The estimator :math:`(\xi, a, b)` of :math:`\hat f`, from the stored draw or from
        ``frequencies`` (in proposal units, as :meth:`draw_frequencies` returns them).

        Returns:
            ``(xi [H or 1, R, D], a [H, R], b [H, R])`` with
            :math:`\hat f(\Delta) = \frac1R\sum_r a_r\cos 2\pi\xi_r\cdot\Delta + b_r\sin 2\pi\xi_r\cdot\Delta`.
        """
        xi = self.frequencies if frequencies is None else frequencies
        if self.sampler == "density":
            return self.density_estimate(xi / self.proposal_scale)
        a, b = self.weights(xi)
        return xi, a, b

    def features(self, pos: Tensor, frequencies: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(psi_q, psi_k)`` of :func:`spectral_features` at ``pos [N, D]``, ``[N, H, 2R]``."""
        xi, a, b = self.estimate(frequencies)
        return spectral_features(pos, xi, a.to(pos.dtype), b.to(pos.dtype))

    def mass(self, frequencies: Tensor | None = None) -> Tensor:
        r"""Upper bound :math:`\frac1R\sum_r \rho_r \ge |\hat f|`, per head, ``[H]``."""
        _, a, b = self.estimate(frequencies)
        return _safe_norm(a, b).mean(dim=-1)

    def forward(self, delta: Tensor, frequencies: Tensor | None = None) -> Tensor:
        r"""The finite-frequency :math:`\hat f(\Delta)`: ``delta [..., D]`` → ``[..., H]``."""
        self._check_delta(delta)
        xi, a, b = self.estimate(frequencies)
        return spectral_rpe(delta, xi, a.to(delta.dtype), b.to(delta.dtype))

    @torch.no_grad()
    def estimator_error(self, delta: Tensor, *, draws: int = 16, seed: int = 0) -> dict:
        r"""How far :math:`\hat f` is from :math:`f` on the given displacements.

        Over ``draws`` fresh draws of the frequencies (the layer's sampler and nodes):
        the relative bias :math:`\lVert \bar{\hat f} - f\rVert / \lVert f\rVert` and the
        relative RMS error :math:`\sqrt{\overline{\lVert\hat f - f\rVert^2}} / \lVert f\rVert`,
        per head, and the same for the stored draw.

        Args:
            delta: displacements, ``[P, D]`` (e.g. all pairs of a molecule).
            draws: fresh draws to average over (default ``16``).
            seed: seed of those draws (default ``0``).

        Returns:
            ``{"bias": [H], "rmse": [H], "stored": [H]}`` as lists of floats.
        """
        self._check_delta(delta)
        exact = self.limit(delta)
        norm = exact.norm(dim=0).clamp_min(torch.finfo(exact.dtype).tiny)
        gen = torch.Generator().manual_seed(seed)
        estimates = torch.stack(
            [
                self(delta, self.draw_frequencies(generator=gen).to(self.frequencies))
                for _ in range(draws)
            ]
        )
        bias = (estimates.mean(0) - exact).norm(dim=0) / norm
        rmse = (estimates - exact).pow(2).sum(1).mean(0).sqrt() / norm
        stored = (self(delta) - exact).norm(dim=0) / norm
        return {"bias": bias.tolist(), "rmse": rmse.tolist(), "stored": stored.tolist()}

    def limit(self, delta: Tensor) -> Tensor:
        r"""The :math:`R\to\infty` limit :math:`f(\Delta)`, ``[..., H]``.

        Families with a closed form override this. The default is a Monte Carlo estimate
        over 65,536 fresh proposal frequencies (fixed seed), whose own error is about
        ``1/256`` of the weights' spread.
        """
        self._check_delta(delta)
        gen = torch.Generator().manual_seed(0)
        xi = self.sample_proposal(65536, generator=gen).to(self.frequencies)
        a, b = self.weights(xi)
        xi, a, b = (t.to(delta.dtype) for t in (xi, a, b))
        return spectral_rpe(delta, xi, a, b)

    def _check_delta(self, delta: Tensor) -> None:
        if delta.dim() < 1 or delta.shape[-1] != self.pos_dim:
            raise ValueError(f"delta must be [..., {self.pos_dim}], got {tuple(delta.shape)}")

    def extra_repr(self) -> str:
        return (
            f"heads={self.heads}, pos_dim={self.pos_dim}, "
            f"num_frequencies={self.num_frequencies}, length_scale={self.length_scale}, "
            f"sampler={self.sampler!r}, nodes={self.frequency_sampler.nodes!r}"
        )


def cauchy_log_density(xi: Tensor, scale: Tensor | float) -> Tensor:
    r"""Log density of the isotropic multivariate Cauchy law with the given scale.

    Its Fourier transform is :math:`e^{-2\pi\,\mathrm{scale}\,\lVert\Delta\rVert}`.

    Args:
        xi: points, ``[..., D]``.
        scale: scale, broadcastable to ``xi[..., 0]``.
    """
    d = xi.shape[-1]
    scale = torch.as_tensor(scale, dtype=xi.dtype, device=xi.device)
    half = 0.5 * (d + 1)
    return (
        math.lgamma(half)
        - half * math.log(math.pi)
        - d * scale.log()
        - half * torch.log1p(xi.pow(2).sum(-1) / scale.pow(2))
    )
