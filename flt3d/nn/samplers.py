r"""Frequency samplers: the base draws of standard-normal nodes the spectral estimators use.

Every spectral estimate in flt3d starts from ``K`` nodes :math:`\varepsilon_k`, each marginally
:math:`\mathcal N(0, I_D)`, which a spectral family maps to frequencies: scaled by the proposal
(:math:`\xi = s\,\varepsilon`, importance weights :math:`g/p`) or, for families that can, drawn
from :math:`g` itself (:math:`\xi = \mu_b + \sigma_b \varepsilon`, constant weights). How the
nodes of one set relate to each other is the variance-reduction choice:

- ``"iid"``: independent Gaussian vectors;
- ``"orthogonal"``: blocks of ``D`` mutually orthogonal directions with independent
  chi-distributed norms (orthogonal random features);
- ``"quadrature"``: a randomised quadrature for isotropic integrands: radii stratified in the
  chi law (one stratum per node, shared random offset, random order) and directions on a
  spherical Fibonacci lattice (evenly spaced angles in 2D, ±1 in 1D), the whole set rotated
  by a uniformly random rotation. Each node is then marginally a stratum of the radial law
  times a uniform direction, so the estimate of any isotropic function stays unbiased, while
  the directions cover the sphere evenly and the radii cover their law evenly.

In all three, each node is marginally :math:`\mathcal N(0, I)` (within its stratum for the
radius), so estimators built on them are unbiased; only the correlations differ.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["NODES", "FrequencySampler", "random_rotations", "chi_quantile"]

NODES = ("iid", "orthogonal", "quadrature")


def random_rotations(
    count: int, dim: int, *, generator: torch.Generator | None = None, dtype=torch.float64
) -> Tensor:
    """``count`` Haar-random orthogonal matrices ``[count, dim, dim]`` (QR with sign fix)."""
    gauss = torch.randn(count, dim, dim, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(gauss)
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    return q.to(dtype)


def chi_quantile(u: Tensor, dim: int, *, iterations: int = 60) -> Tensor:
    r"""Quantiles of the chi law with ``dim`` degrees of freedom (norm of a standard Gaussian).

    Solves :math:`P(\tfrac{D}{2}, \rho^2/2) = u` by bisection on the regularised incomplete
    gamma function, in float64.
    """
    u = u.to(torch.float64)
    lo = torch.zeros_like(u)
    hi = torch.full_like(u, 4.0 + 2.0 * math.sqrt(dim))
    half = torch.tensor(0.5 * dim, dtype=torch.float64)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        below = torch.special.gammainc(half, 0.5 * mid * mid) < u
        lo = torch.where(below, mid, lo)
        hi = torch.where(below, hi, mid)
    return 0.5 * (lo + hi)


def _lattice_directions(num: int, dim: int) -> Tensor:
    """``num`` evenly spread unit vectors in ``dim`` dimensions, ``[num, dim]``, float64."""
    k = torch.arange(num, dtype=torch.float64)
    if dim == 1:
        return torch.where(k % 2 == 0, 1.0, -1.0).unsqueeze(-1)
    if dim == 2:
        angle = 2 * math.pi * (k + 0.5) / num
        return torch.stack([angle.cos(), angle.sin()], dim=-1)
    if dim == 3:
        z = 1 - (2 * k + 1) / num
        phi = k * math.pi * (3 - math.sqrt(5))
        ring = (1 - z * z).clamp_min(0).sqrt()
        return torch.stack([ring * phi.cos(), ring * phi.sin(), z], dim=-1)
    raise ValueError(f"quadrature nodes support dim 1, 2 or 3, got {dim}")


class FrequencySampler:
    r"""Draws sets of standard-normal nodes (see the module docstring).

    Args:
        nodes: ``"iid"``, ``"orthogonal"`` or ``"quadrature"`` (default ``"iid"``).

    Example:
        >>> import torch
        >>> s = FrequencySampler("quadrature")
        >>> s.draw(2, 16, 3, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([2, 16, 3])
    """

    def __init__(self, nodes: str = "iid") -> None:
        if nodes not in NODES:
            raise ValueError(f"nodes must be one of {NODES}, got {nodes!r}")
        self.nodes = nodes

    def draw(
        self, groups: int, num: int, dim: int, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """``groups`` independent sets of ``num`` nodes in ``dim`` dimensions, ``[groups, num, dim]``
        (float32; drawn in float64)."""
        if self.nodes == "iid":
            return torch.randn(groups, num, dim, generator=generator)
        if self.nodes == "orthogonal":
            blocks = math.ceil(num / dim)
            rot = random_rotations(groups * blocks, dim, generator=generator)
            dirs = rot.transpose(-1, -2).reshape(groups, blocks * dim, dim)[:, :num]
            norms = torch.randn(groups, num, dim, generator=generator, dtype=torch.float64)
            return (dirs * norms.norm(dim=-1, keepdim=True)).float()
        if dim > 3:
            raise ValueError(f"quadrature nodes support dim 1, 2 or 3, got {dim}")
        offset = torch.rand(groups, 1, generator=generator, dtype=torch.float64)
        order = torch.argsort(torch.rand(groups, num, generator=generator), dim=-1)
        radius = chi_quantile((order.to(torch.float64) + offset) / num, dim)  # [groups, num]
        rot = random_rotations(groups, dim, generator=generator)
        dirs = torch.einsum("kd,ged->gke", _lattice_directions(num, dim), rot)
        return (dirs * radius.unsqueeze(-1)).float()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.nodes!r})"
