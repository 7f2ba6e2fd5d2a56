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
    """

    proposals = ("gaussian", "cauchy")
    #: whether :meth:`limit` is a closed form (cheap enough to evaluate on every pair)
    closed_form = False
    #: whether :math:`f(-\Delta) = f(\Delta)` for every parameter value (no odd part)
    even = False

    def __init__(
        self,
        heads: int,
        pos_dim: int,
        *,
        num_frequencies: int = 16,
        length_scale: float = 1.0,
        learnable_frequencies: bool = False,
        proposal: str = "gaussian",
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
        self.heads = heads
        self.pos_dim = pos_dim
        self.num_frequencies = num_frequencies
        self.length_scale = float(length_scale)
        self.proposal = proposal
        xi = self.sample_proposal(num_frequencies)
        if learnable_frequencies:
            self.frequencies = nn.Parameter(xi)
        else:
            self.register_buffer("frequencies", xi)

    @property
    def proposal_scale(self) -> float:
        """Scale ``s`` of the proposal, ``1 / (2 pi length_scale)``."""
        return 1.0 / (2 * math.pi * self.length_scale)

    def sample_proposal(self, num: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``[heads, num, pos_dim]`` frequencies from the proposal."""
        shape = (self.heads, num, self.pos_dim)
        z = torch.randn(shape, generator=generator)
        if self.proposal == "cauchy":
            w = torch.randn((self.heads, num, 1), generator=generator).abs().clamp_min(1e-12)
            z = z / w
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
        """Draw fresh frequencies from the proposal, in place."""
        xi = self.sample_proposal(self.num_frequencies, generator=generator)
        self.frequencies.copy_(xi.to(self.frequencies))

    @abstractmethod
    def weights(self, xi: Tensor) -> tuple[Tensor, Tensor]:
        """Importance weights ``(a, b)``, each ``[H, R]``, at frequencies ``xi [H, R, D]``."""

    def features(self, pos: Tensor) -> tuple[Tensor, Tensor]:
        """``(psi_q, psi_k)`` of :func:`spectral_features` at ``pos [N, D]``, ``[N, H, 2R]``."""
        a, b = self.weights(self.frequencies)
        return spectral_features(pos, self.frequencies, a.to(pos.dtype), b.to(pos.dtype))

    def mass(self) -> Tensor:
        r"""Upper bound :math:`\frac1R\sum_r \rho_r \ge |\hat f|`, per head, ``[H]``."""
        a, b = self.weights(self.frequencies)
        return _safe_norm(a, b).mean(dim=-1)

    def forward(self, delta: Tensor) -> Tensor:
        r"""The finite-frequency :math:`\hat f(\Delta)`: ``delta [..., D]`` → ``[..., H]``."""
        self._check_delta(delta)
        a, b = self.weights(self.frequencies)
        return spectral_rpe(delta, self.frequencies, a.to(delta.dtype), b.to(delta.dtype))

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
            f"num_frequencies={self.num_frequencies}, length_scale={self.length_scale}"
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
