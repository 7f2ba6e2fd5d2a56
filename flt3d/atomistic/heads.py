r"""The property heads (extensive, intensive, dipole moment, ⟨R²⟩) and their registry.

Each is an :class:`~flt3d.atomistic.atomwise.AtomwiseHead` that reduces the per-atom values
:math:`s_i` per molecule in its own way: a sum, a mean, a dipole, a second moment.
:func:`make_head` builds one by its name in :data:`HEADS`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.utils import scatter

from flt3d.atomistic.atomwise import AtomwiseHead
from flt3d.atomistic.masses import atomic_masses
from flt3d.atomistic.statistics import (
    HeadStatistics,
    _check_fit_inputs,
    fit_extensive,
    fit_intensive,
    fit_spatial_extent,
)
from flt3d.atomistic.units import BOHR2_PER_ANGSTROM2, DEBYE_PER_E_ANGSTROM

__all__ = [
    "HEADS",
    "DipoleHead",
    "ElectronicSpatialExtentHead",
    "ExtensiveHead",
    "IntensiveHead",
    "make_head",
]


class ExtensiveHead(AtomwiseHead):
    r"""Extensive property: a sum of per-atom contributions on per-element references.

    .. math::
        y_G = \sum_{i \in G} \big(\sigma\, \mathrm{MLP}(h_i) + \mu + a_{z_i}\big)

    For energies, :math:`a_z` are per-element reference energies and :math:`\mu, \sigma` the
    mean and std of the per-atom residual (see :meth:`fit_statistics`). Arguments as
    :class:`AtomwiseHead`.

    Example:
        >>> import torch
        >>> head = ExtensiveHead(8, atomref={"H": -13.6})
        >>> head
        ExtensiveHead(8, out_channels=1)
        >>> z = torch.tensor([1, 1, 8]); batch = torch.tensor([0, 0, 1])
        >>> head(torch.randn(3, 8), z, torch.randn(3, 3), batch).shape
        torch.Size([2, 1])
    """

    def reduce(self, s: Tensor, z: Tensor, pos: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        return scatter(s, batch, dim=0, dim_size=num_graphs, reduce="sum")

    @torch.no_grad()
    def fit_statistics(
        self, y: Tensor, z: Tensor, pos: Tensor, batch: Tensor, num_graphs: int | None = None
    ) -> HeadStatistics:
        """Least-squares per-element references, then mean and std of the per-atom residual.

        See :func:`~flt3d.atomistic.statistics.fit_extensive`.
        """
        return fit_extensive(y, z, batch, num_graphs, self.out_channels)


class IntensiveHead(AtomwiseHead):
    r"""Intensive property: the mean of per-atom values, in target units.

    .. math::
        y_G = \sigma\, \frac{1}{|G|}\sum_{i \in G} \mathrm{MLP}(h_i) + \mu
        \;\Big(+ \frac{1}{|G|}\sum_{i\in G} a_{z_i}\Big)

    :math:`\mu, \sigma` are the target's mean and std (see :meth:`fit_statistics`); the
    references are zero unless set. A graph without atoms gets :math:`\mu`, what the
    statistics predict without information. Arguments as :class:`AtomwiseHead`.
    """

    def reduce(self, s: Tensor, z: Tensor, pos: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        counts = torch.bincount(batch, minlength=num_graphs).unsqueeze(-1)
        mean = scatter(s, batch, dim=0, dim_size=num_graphs, reduce="sum") / counts.clamp_min(1)
        return torch.where(counts > 0, mean, self.mean.to(mean.dtype))

    @torch.no_grad()
    def fit_statistics(
        self, y: Tensor, z: Tensor, pos: Tensor, batch: Tensor, num_graphs: int | None = None
    ) -> HeadStatistics:
        """Mean and std of the targets; no references (:func:`~flt3d.atomistic.statistics.fit_intensive`)."""
        return fit_intensive(y, batch, num_graphs, self.out_channels)


class _CenteredHead(AtomwiseHead):
    """Base of the heads that measure coordinates from a per-molecule centre."""

    centers = ("mass", "charge", "geometry")

    def __init__(self, in_channels: int, *, center: str = "mass", **kwargs) -> None:
        if center not in self.centers:
            raise ValueError(f"center must be one of {self.centers}, got {center!r}")
        if kwargs.get("out_channels", 1) != 1:
            raise ValueError(
                f"{type(self).__name__} has one output, got out_channels={kwargs['out_channels']}"
            )
        super().__init__(in_channels, **kwargs)
        self.center = center
        self.register_buffer("masses", atomic_masses().to(self.mean.dtype), persistent=False)

    def relative_pos(self, z: Tensor, pos: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        r"""``pos`` less the centre of its molecule, :math:`r_i - r_c`, ``[N, 3]``.

        :math:`r_c = \sum_i w_i r_i / \sum_i w_i` with :math:`w_i` the atomic mass (``"mass"``),
        the atomic number (``"charge"``, the centre of nuclear charge) or 1 (``"geometry"``).
        """
        if self.center == "geometry":
            weight = torch.ones_like(pos[:, 0])
        elif self.center == "charge":
            weight = z.to(pos.dtype)
        else:
            weight = self.masses.to(pos.device, pos.dtype)[z]
        weight = weight.unsqueeze(-1)
        total = scatter(weight, batch, dim=0, dim_size=num_graphs, reduce="sum")
        moment = scatter(weight * pos, batch, dim=0, dim_size=num_graphs, reduce="sum")
        center = moment / total.clamp_min(torch.finfo(pos.dtype).tiny)
        return pos - center[batch]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.in_channels}, center={self.center!r})"


class DipoleHead(_CenteredHead):
    r"""Dipole moment magnitude from learned, neutral per-atom charges.

    .. math::
        q_i = s_i - \frac{1}{|G|}\sum_{j\in G} s_j, \qquad
        \mu_G = c\,\Big\lVert \sum_{i \in G} q_i\, (r_i - r_c) \Big\rVert

    with :math:`s_i` the per-atom value (charges in units of e; :math:`\mu` cancels, the
    references act as per-element charges), :math:`r_c` the centre of the molecule (it does not
    change the dipole of a neutral molecule, but keeps float32 sums accurate) and ``c``
    converting e·Å to Debye. Invariant to rotations and translations of the molecule.

    Args:
        in_channels: per-atom feature channels.
        center: ``"mass"`` (default), ``"charge"`` (nuclear charge) or ``"geometry"``.
        conversion: ``c``, output units per e·(``pos`` unit) (default
            :data:`DEBYE_PER_E_ANGSTROM`: ``pos`` in Å, output in Debye).
        **kwargs: :class:`AtomwiseHead` options (``out_channels`` must be 1).
    """

    def __init__(
        self,
        in_channels: int,
        *,
        center: str = "mass",
        conversion: float = DEBYE_PER_E_ANGSTROM,
        **kwargs,
    ) -> None:
        super().__init__(in_channels, center=center, **kwargs)
        self.conversion = float(conversion)

    def charges(self, s: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        """Neutral charges ``[N, 1]``: per-atom values less their molecule's mean."""
        return s - scatter(s, batch, dim=0, dim_size=num_graphs, reduce="mean")[batch]

    def dipole(self, s: Tensor, z: Tensor, pos: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        r"""The dipole vector :math:`\sum_i q_i (r_i - r_c)` in e·(``pos`` unit), ``[G, 3]``."""
        q = self.charges(s, batch, num_graphs)
        r = self.relative_pos(z, pos, batch, num_graphs)
        return scatter(q * r, batch, dim=0, dim_size=num_graphs, reduce="sum")

    def reduce(self, s: Tensor, z: Tensor, pos: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        mu = self.dipole(s, z, pos, batch, num_graphs)
        # the norm's gradient is undefined at zero: keep it finite for symmetric molecules
        eps = torch.finfo(mu.dtype).eps
        norm = (mu.pow(2).sum(-1, keepdim=True) + eps**2).sqrt()
        return self.conversion * norm


class ElectronicSpatialExtentHead(_CenteredHead):
    r"""Electronic spatial extent :math:`\langle R^2\rangle` from positive per-atom weights.

    .. math::
        \langle R^2\rangle_G = c \sum_{i \in G} \mathrm{softplus}(s_i)\, \lVert r_i - r_c\rVert^2

    The weights play the part of electron populations; ``c`` converts Å² to bohr². Invariant
    to rotations and translations. For QM9 the references :math:`a_z` hold the
    inverse-softplus of per-element weights fitted by least squares (see
    :meth:`fit_statistics`).

    Args:
        in_channels: per-atom feature channels.
        center: ``"mass"`` (default), ``"charge"`` (centre of nuclear charge, Gaussian's
            standard orientation) or ``"geometry"``.
        conversion: ``c``, output units per (``pos`` unit)² (default
            :data:`BOHR2_PER_ANGSTROM2`: ``pos`` in Å, output in a0²).
        **kwargs: :class:`AtomwiseHead` options (``out_channels`` must be 1).
    """

    def __init__(
        self,
        in_channels: int,
        *,
        center: str = "mass",
        conversion: float = BOHR2_PER_ANGSTROM2,
        **kwargs,
    ) -> None:
        super().__init__(in_channels, center=center, **kwargs)
        self.conversion = float(conversion)

    def reduce(self, s: Tensor, z: Tensor, pos: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        r2 = self.relative_pos(z, pos, batch, num_graphs).pow(2).sum(-1, keepdim=True)
        return self.conversion * scatter(
            F.softplus(s) * r2, batch, dim=0, dim_size=num_graphs, reduce="sum"
        )

    @torch.no_grad()
    def fit_statistics(
        self, y: Tensor, z: Tensor, pos: Tensor, batch: Tensor, num_graphs: int | None = None
    ) -> HeadStatistics:
        r"""Per-element weights :math:`w_z \ge 0.05` by least squares, as pre-softplus references.

        .. math::
            w = \arg\min_w \sum_G \Big(y_G - c \sum_z w_z \sum_{i\in G, z_i = z}
            \lVert r_i - r_c\rVert^2\Big)^2, \qquad a_z = \mathrm{softplus}^{-1}(w_z)

        and :math:`\mu = 0`, :math:`\sigma = 1`, so the MLP starts as a correction of about one
        electron per atom on the fitted baseline.
        """
        y, num_graphs = _check_fit_inputs(y, batch, num_graphs, 1)
        pos = torch.as_tensor(pos, dtype=torch.float64)
        r2 = self.relative_pos(z, pos, batch, num_graphs).pow(2).sum(-1) * self.conversion
        return fit_spatial_extent(y, r2, z, batch, num_graphs)


HEADS: dict[str, type[AtomwiseHead]] = {
    "extensive": ExtensiveHead,
    "intensive": IntensiveHead,
    "dipole": DipoleHead,
    "spatial_extent": ElectronicSpatialExtentHead,
}
"""Heads by name."""


def make_head(name: str, in_channels: int, **kwargs) -> AtomwiseHead:
    """Build a head by name.

    Args:
        name: one of :data:`HEADS` (``"extensive"``, ``"intensive"``, ``"dipole"``,
            ``"spatial_extent"``).
        in_channels: per-atom feature channels.
        **kwargs: options of the head.
    """
    if name not in HEADS:
        raise ValueError(f"head must be one of {sorted(HEADS)}, got {name!r}")
    return HEADS[name](in_channels, **kwargs)
