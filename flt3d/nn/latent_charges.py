r"""LatentCharges: a long-range energy from learned per-atom charges and a learned pair function.

.. math::
    E_g = \tfrac12 \sum_c \sum_{i, j \in g} q_{ic}\, q_{jc}\, f_c(r_i - r_j), \qquad
    q_i = W h_i

per structure :math:`g`: ``channels`` latent charges per atom, read linearly from its
representation :math:`h_i`, interacting through smooth functions :math:`f_c` learned through
their spectra (a :class:`~flt3d.nn.SpectralFilter` over every atom of the structure, one head
per channel). It is the reciprocal-space half of an Ewald sum with the charges and the kernel
learned: a kernel whose spectral mass sits near :math:`\xi = 0` (an isotropic Gaussian mixture
with lengths from ``length_scale`` to about 6 × that) is what random features estimate well,
so ``"linear"`` mode costs O(N R) per channel; ``"exact"`` sums the closed form over all pairs.
In linear mode the energy is a sum of squared structure factors (:func:`structure_factor_energy`),
the Ewald reciprocal sum's form, whose per-atom terms are summed in chunks of atoms: memory
stays that of the inputs at any number of frequencies.
The charges see only the atom's neighbourhood; the energy they make reaches every atom, so
forces :math:`-\partial E/\partial r` carry the field of charges far beyond any cutoff, which
no local model can learn. The pairs :math:`i = j` add :math:`f_c(0) q_{ic}^2`, a local term.

Units: the energy is :math:`k_e / \ell` times the sum, with Coulomb's constant
:math:`k_e = 14.40` eV Å (:data:`COULOMB_EV_A`) and :math:`\ell` = ``length_scale``, so charges of
order one (in units of e) and kernels with :math:`f_c(0) = 1` give energies of the size
electrostatics has, in eV, and the learned charges need not grow by orders of magnitude to
get there.
"""

from __future__ import annotations

import math

import torch
from ase import units
from torch import Tensor, nn
from torch_geometric.utils import scatter

from flt3d.nn.graph import center_pos, check_batch
from flt3d.nn.pairs import pair_sum
from flt3d.nn.precision import full_precision
from flt3d.nn.spectral_filter import SpectralFilter

__all__ = ["LatentCharges", "COULOMB_EV_A", "structure_factor_energy"]

COULOMB_EV_A = units.Hartree * units.Bohr
r"""Coulomb's constant :math:`e^2 / 4\pi\varepsilon_0` in eV Å (ASE's units)."""


def structure_factor_energy(
    q: Tensor, pos: Tensor, batch: Tensor, num_graphs: int, xi: Tensor, a: Tensor
) -> Tensor:
    r"""The charges' energy under the low-rank kernel estimate, from structure factors.

    With :math:`\hat f_c(\Delta) = \frac1R \sum_r a_{cr} \cos 2\pi\xi_{cr}\cdot\Delta +
    b_{cr} \sin 2\pi\xi_{cr}\cdot\Delta`, the sine terms cancel in the symmetric double
    sum, and

    .. math::
        \tfrac12 \sum_c \sum_{i,j\in g} q_{ic} q_{jc} \hat f_c(r_i - r_j)
        = \frac{1}{2R} \sum_{c,r} a_{cr} \big(C_{gcr}^2 + S_{gcr}^2\big), \quad
        C_{gcr} + i S_{gcr} = \sum_{i \in g} q_{ic}\, e^{2\pi i\, \xi_{cr}\cdot r_i},

    the same value as the low-rank filter's :math:`\tfrac12\sum_i q_i \cdot \hat\phi_i`. The
    per-atom phases ``[N, C, R]`` are summed per graph with :func:`~flt3d.nn.pairs.pair_sum`
    (atom → graph "pairs"), in chunks of atoms whose terms the backward pass recomputes.

    Args:
        q: charges ``[N, C]``.
        pos: coordinates ``[N, D]`` (best centred per graph: phases stay small).
        batch: graph id per atom ``[N]``; num_graphs: ``G``.
        xi: frequencies ``[C or 1, R, D]``; a: their cosine weights ``[C, R]``.

    Returns:
        ``[G]``.
    """
    r = xi.shape[1]
    xi = xi.to(pos.dtype)

    def terms(q_j: Tensor, pos_j: Tensor) -> Tensor:
        theta = 2 * math.pi * torch.einsum("nd,crd->ncr", pos_j, xi)
        return torch.cat([theta.cos(), theta.sin()], dim=-1) * q_j.unsqueeze(-1)

    index = torch.stack([batch, torch.arange(batch.numel(), device=batch.device)])
    factors = pair_sum(
        terms,
        index,
        num_graphs,
        sources_j=(q, pos),
        params=(xi,),
        per_pair=3 * q.shape[1] * 2 * r,
    )  # [G, C, 2R]: C then S
    weight = torch.cat([a, a], dim=-1).to(q.dtype) / (2 * r)
    return (weight * factors.square()).sum(dim=(1, 2))


class LatentCharges(nn.Module):
    r"""Long-range energy of latent charges (see the module docstring).

    Args:
        in_channels: width of the per-atom representation.
        channels: latent charges per atom ``C`` (default ``4``), each with its own kernel.
        spectrum: spectral family of the kernels (default ``"isotropic_mixture"``: positive
            weights make :math:`f_c` positive definite, like Coulomb's :math:`1/r`; or
            ``"coulomb"``, :class:`~flt3d.nn.CoulombKernel`: :math:`1/r` itself beyond a learned
            smoothing length, at every range).
        length_scale: shortest length the kernels resolve, in Å (default ``3.0``); their
            initial ranges spread from it to about 6 × it over the channels.
        num_frequencies: frequencies of the low-rank estimate in ``"linear"`` mode (default
            ``16``).
        attention: ``"linear"`` (default) or ``"exact"``, switched with the model's
            (:func:`flt3d.nn.set_attention`).
        sampler, nodes, redraw: frequency draws of the estimate (see
            :class:`~flt3d.nn.SpectralFilter`).
        scale: factor on the energy (default :math:`k_e / \ell`, eV, see the module
            docstring).
        neutral: every channel's charges sum to zero in each structure (default ``False``):
            :math:`q_{ic} - \frac{1}{N_g}\sum_{j\in g} q_{jc}`, for structures known to be
            neutral. Free charges carry a net charge per channel whose self-energy grows with
            the structure (:math:`\sim Q^2 / R`) and which the forces' gradients follow
            before any local detail.

    Shapes:
        - **input:** h ``[N, in_channels]``, pos ``[N, 3]``, batch ``[N]`` (optional).
        - **output:** energies ``[G, 1]``.

    Example:
        >>> import torch
        >>> coulomb = LatentCharges(8, attention="exact")
        >>> coulomb(torch.randn(5, 8), torch.randn(5, 3)).shape
        torch.Size([1, 1])
    """

    def __init__(
        self,
        in_channels: int,
        channels: int = 4,
        *,
        spectrum: str = "isotropic_mixture",
        length_scale: float = 3.0,
        num_frequencies: int = 16,
        attention: str = "linear",
        sampler: str = "density",
        nodes: str = "quadrature",
        redraw: str = "train",
        scale: float | None = None,
        neutral: bool = False,
    ) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels must be positive, got {channels}")
        self.channels = channels
        self.neutral = bool(neutral)
        self.scale = COULOMB_EV_A / length_scale if scale is None else float(scale)
        self.charges = nn.Linear(in_channels, channels)
        self.kernel = SpectralFilter(
            channels,
            1,
            3,
            spectrum=spectrum,
            num_frequencies=num_frequencies,
            attention=attention,
            length_scale=length_scale,
            closed_form=True,
            sampler=sampler,
            nodes=nodes,
            redraw=redraw,
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Small random charges, about 0.02 e (the term starts near zero, off the saddle at
        zero charges), and the kernels' initial ranges."""
        nn.init.normal_(self.charges.weight, std=0.02 / self.charges.in_features**0.5)
        nn.init.zeros_(self.charges.bias)
        self.kernel.reset_parameters()

    def charge(
        self, h: Tensor, batch: Tensor | None = None, num_graphs: int | None = None
    ) -> Tensor:
        """The latent charges ``[N, C]`` of representations ``h [N, in_channels]`` (with
        ``neutral``, summing to zero over each structure of ``batch``)."""
        q = self.charges(h)
        if not self.neutral:
            return q
        batch, num_graphs = check_batch(batch, h.shape[0], h.device, num_graphs)
        return q - scatter(q, batch, dim=0, dim_size=num_graphs, reduce="mean")[batch]

    @full_precision
    def forward(
        self, h: Tensor, pos: Tensor, batch: Tensor | None = None, *, num_graphs: int | None = None
    ) -> Tensor:
        """Energy per structure; see the class docstring for shapes."""
        batch, num_graphs = check_batch(batch, h.shape[0], h.device, num_graphs)
        q = self.charge(h, batch, num_graphs)
        if self.kernel.attention == "linear":
            pos = center_pos(pos.to(q.dtype), batch, num_graphs)
            xi, a, _ = self.kernel.spectrum.estimate(self.kernel.frequencies())
            energy = structure_factor_energy(q, pos, batch, num_graphs, xi, a)
            return self.scale * energy.unsqueeze(-1)
        potential = self.kernel(q.unsqueeze(-1), pos.to(q.dtype), batch).squeeze(-1)
        per_atom = 0.5 * self.scale * (q * potential).sum(-1, keepdim=True)
        return per_atom.new_zeros(num_graphs, 1).index_add(0, batch, per_atom)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, scale={self.scale:g}" + (
            ", neutral=True" if self.neutral else ""
        )
