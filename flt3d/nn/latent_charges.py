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

from torch import Tensor, nn

from flt3d.nn.graph import check_batch
from flt3d.nn.spectral_filter import SpectralFilter

__all__ = ["LatentCharges", "COULOMB_EV_A"]

COULOMB_EV_A = 14.399645
r"""Coulomb's constant :math:`e^2 / 4\pi\varepsilon_0` in eV Å (``ase.units.Hartree *
ase.units.Bohr``; written out, so the layer does not need ASE)."""


class LatentCharges(nn.Module):
    r"""Long-range energy of latent charges (see the module docstring).

    Args:
        in_channels: width of the per-atom representation.
        channels: latent charges per atom ``C`` (default ``4``), each with its own kernel.
        spectrum: spectral family of the kernels (default ``"isotropic_mixture"``: positive
            weights make :math:`f_c` positive definite, like Coulomb's :math:`1/r`).
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
    ) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels must be positive, got {channels}")
        self.channels = channels
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

    def charge(self, h: Tensor) -> Tensor:
        """The latent charges ``[N, C]`` of representations ``h [N, in_channels]``."""
        return self.charges(h)

    def forward(
        self, h: Tensor, pos: Tensor, batch: Tensor | None = None, *, num_graphs: int | None = None
    ) -> Tensor:
        """Energy per structure; see the class docstring for shapes."""
        batch, counted = check_batch(batch, h.shape[0], h.device)
        num_graphs = counted if num_graphs is None else num_graphs
        q = self.charges(h)
        potential = self.kernel(q.unsqueeze(-1), pos.to(q.dtype), batch).squeeze(-1)
        per_atom = 0.5 * self.scale * (q * potential).sum(-1, keepdim=True)
        return per_atom.new_zeros(num_graphs, 1).index_add(0, batch, per_atom)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, scale={self.scale:g}"
