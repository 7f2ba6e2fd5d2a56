r"""Output heads: per-atom features to per-molecule properties, blind to the representation.

Every head follows the same three steps (pre-reduce → reduce → post-reduce). A small per-atom
MLP gives an output :math:`o_i`; target statistics and per-element references turn it into a
per-atom value

.. math::
    s_i = \sigma\, o_i + \mu + a_{z_i},

with :math:`\mu` (``mean``), :math:`\sigma` (``std``) and :math:`a` (``atomref``, indexed by
atomic number) registered buffers that travel with ``state_dict``; each head then reduces
:math:`s_i` per molecule in its own way (a sum, a mean, a dipole, a second moment). The heads take
features ``h [N, C]``, atomic numbers ``z [N]``, coordinates ``pos [N, 3]`` and the PyG ``batch``
vector, and never see how ``h`` was computed.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import scatter

from flt3d.nn.graph import check_batch

__all__ = [
    "ATOMIC_MASSES",
    "BOHR2_PER_ANGSTROM2",
    "DEBYE_PER_E_ANGSTROM",
    "HEADS",
    "MAX_Z",
    "AtomwiseHead",
    "DipoleHead",
    "ElectronicSpatialExtentHead",
    "ExtensiveHead",
    "HeadStatistics",
    "IntensiveHead",
    "atomic_masses",
    "make_head",
]

MAX_Z = 118
"""Largest atomic number a head accepts; ``atomref`` has ``MAX_Z + 1`` rows."""

DEBYE_PER_E_ANGSTROM = 4.80320
"""Debye per elementary charge times ångström."""

BOHR2_PER_ANGSTROM2 = 3.5710643
"""Square bohr per square ångström (:math:`1/0.529177^2`)."""

ATOMIC_MASSES: dict[int, float] = {
    1: 1.008, 2: 4.0026, 3: 6.94, 4: 9.0122, 5: 10.81, 6: 12.011, 7: 14.007, 8: 15.999,
    9: 18.998, 10: 20.180, 11: 22.990, 12: 24.305, 13: 26.982, 14: 28.085, 15: 30.974,
    16: 32.06, 17: 35.45, 18: 39.948, 19: 39.098, 20: 40.078, 35: 79.904, 53: 126.90,
}  # fmt: skip
"""Standard atomic weights (u) of the elements of organic chemistry; others come from ASE."""


def atomic_masses() -> Tensor:
    """Atomic mass (u) of every atomic number, ``[MAX_Z + 1]`` float64.

    :data:`ATOMIC_MASSES` covers H to Ca, Br and I; other elements take ``ase.data``'s masses
    when ASE is installed and are ``NaN`` otherwise (a head that meets one raises). Row 0 is 0.
    """
    masses = torch.full((MAX_Z + 1,), math.nan, dtype=torch.float64)
    masses[0] = 0.0
    try:
        from ase.data import atomic_masses as ase_masses
    except ImportError:
        pass
    else:
        masses[1:] = torch.as_tensor(ase_masses[1 : MAX_Z + 1], dtype=torch.float64)
    for number, mass in ATOMIC_MASSES.items():
        masses[number] = mass
    return masses


class HeadStatistics(NamedTuple):
    """Target statistics of a head: ``mean`` and ``std`` ``[out]``, ``atomref`` ``[MAX_Z + 1, out]``.

    Unpacks into :meth:`AtomwiseHead.set_statistics` (``head.set_statistics(*stats)``).
    """

    mean: Tensor
    std: Tensor
    atomref: Tensor | None


def _as_column(value: float | Tensor | list, out_channels: int, name: str) -> Tensor:
    t = torch.as_tensor(value, dtype=torch.float64).detach().cpu().flatten()
    if t.numel() == 1:
        t = t.expand(out_channels)
    if t.numel() != out_channels:
        raise ValueError(f"{name} must be a number or have {out_channels} values, got {t.numel()}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite, got {t.tolist()}")
    return t.clone()


def _as_atomref(atomref: Tensor | list | dict | None, out_channels: int) -> Tensor:
    table = torch.zeros(MAX_Z + 1, out_channels, dtype=torch.float64)
    if atomref is None:
        return table
    if isinstance(atomref, dict):
        from flt3d.datasets.elements import atomic_number, element_symbol

        for key, value in atomref.items():
            if isinstance(key, str):
                number = int(key) if key.strip().isdigit() else atomic_number(key)
            else:
                number = int(key)
            element_symbol(number)  # validates the range
            table[number] = _as_column(value, out_channels, f"atomref[{key!r}]")
        return table
    t = torch.as_tensor(atomref, dtype=torch.float64).detach().cpu()
    if t.dim() == 1:
        t = t.unsqueeze(-1).expand(-1, out_channels)
    if t.dim() != 2 or t.shape[1] != out_channels or t.shape[0] > MAX_Z + 1:
        raise ValueError(
            f"atomref must be [Z, {out_channels}] (or [Z]) indexed by atomic number with "
            f"Z <= {MAX_Z + 1}, or a dict element -> value, got {tuple(t.shape)}"
        )
    if not bool(torch.isfinite(t).all()):
        raise ValueError("atomref must be finite")
    table[: t.shape[0]] = t
    return table


class AtomwiseHead(nn.Module, ABC):
    r"""Base of the heads: per-atom MLP, statistics and per-element references (see module doc).

    .. math::
        s_i = \sigma\, \mathrm{MLP}(h_i) + \mu + a_{z_i}

    Subclasses implement :meth:`reduce`, which turns :math:`s` into one value per molecule.

    Args:
        in_channels: per-atom feature channels ``C``.
        out_channels: outputs per molecule (default ``1``).
        hidden_channels: width of the MLP (default ``in_channels // 2``, at least 1).
        mean: :math:`\mu`, a number or ``out_channels`` numbers (default ``0.0``).
        std: :math:`\sigma`, positive (default ``1.0``).
        atomref: per-element reference :math:`a_z`: ``[Z]`` or ``[Z, out_channels]`` indexed by
            atomic number, or a dict ``{element: value}`` (symbol or number); default zeros.

    Shapes:
        - **input:** h ``[N, C]``, z ``[N]`` long, pos ``[N, 3]``, batch ``[N]`` (optional).
        - **output:** ``[G, out_channels]``.
    """

    def __init__(
        self,
        in_channels: int,
        *,
        out_channels: int = 1,
        hidden_channels: int | None = None,
        mean: float | Tensor = 0.0,
        std: float | Tensor = 1.0,
        atomref: Tensor | dict | None = None,
    ) -> None:
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise ValueError(
                f"in_channels and out_channels must be positive, got {in_channels}, {out_channels}"
            )
        if hidden_channels is None:
            hidden_channels = max(in_channels // 2, 1)
        if hidden_channels < 1:
            raise ValueError(f"hidden_channels must be positive, got {hidden_channels}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.hidden_channels = hidden_channels
        self.mlp = nn.Sequential(
            nn.Linear(in_channels, hidden_channels),
            nn.SiLU(),
            nn.Linear(hidden_channels, out_channels),
        )
        dtype = torch.get_default_dtype()
        self.register_buffer("mean", torch.zeros(out_channels, dtype=dtype))
        self.register_buffer("std", torch.ones(out_channels, dtype=dtype))
        self.register_buffer("atomref", torch.zeros(MAX_Z + 1, out_channels, dtype=dtype))
        self.set_statistics(mean, std, atomref)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Reset the MLP (statistics and references are kept)."""
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()

    @torch.no_grad()
    def set_statistics(
        self,
        mean: float | Tensor,
        std: float | Tensor,
        atomref: Tensor | dict | None = None,
    ) -> None:
        r"""Set :math:`\mu`, :math:`\sigma` and the per-element references, in place.

        Args:
            mean: a number or ``out_channels`` numbers.
            std: positive; a number or ``out_channels`` numbers.
            atomref: see the class arguments; ``None`` sets all references to zero.
        """
        std = _as_column(std, self.out_channels, "std")
        if not bool((std > 0).all()):
            raise ValueError(f"std must be positive, got {std.tolist()}")
        self.mean.copy_(_as_column(mean, self.out_channels, "mean"))
        self.std.copy_(std)
        self.atomref.copy_(_as_atomref(atomref, self.out_channels))

    def statistics(self) -> HeadStatistics:
        """The current ``(mean, std, atomref)``, detached copies."""
        return HeadStatistics(self.mean.clone(), self.std.clone(), self.atomref.clone())

    def atomwise(self, h: Tensor, z: Tensor) -> Tensor:
        r"""Pre-reduce: :math:`s_i = \sigma\,\mathrm{MLP}(h_i) + \mu + a_{z_i}`, ``[N, out]``."""
        return self.mlp(h) * self.std + self.mean + self.atomref[z]

    @abstractmethod
    def reduce(self, s: Tensor, z: Tensor, pos: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        """Reduce and post-reduce: per-atom ``s [N, out]`` → ``[G, out]``."""

    def forward(
        self,
        h: Tensor,
        z: Tensor,
        pos: Tensor,
        batch: Tensor | None = None,
        *,
        num_graphs: int | None = None,
    ) -> Tensor:
        """Per-molecule outputs ``[G, out_channels]``; ``num_graphs`` defaults to ``batch.max() + 1``."""
        n = h.shape[0] if h.dim() == 2 else -1
        if h.dim() != 2 or h.shape[1] != self.in_channels:
            raise ValueError(f"h must be [N, {self.in_channels}], got {tuple(h.shape)}")
        if z.dim() != 1 or z.shape[0] != n or z.dtype != torch.long:
            raise ValueError(f"z must be [N] = [{n}] long, got {tuple(z.shape)} {z.dtype}")
        if pos.dim() != 2 or pos.shape != (n, 3):
            raise ValueError(f"pos must be [N, 3] = [{n}, 3], got {tuple(pos.shape)}")
        if n and (int(z.min()) < 0 or int(z.max()) > MAX_Z):
            raise ValueError(f"z must hold atomic numbers in [0, {MAX_Z}]")
        batch, num_graphs = check_batch(batch, n, h.device, num_graphs)
        s = self.atomwise(h, z)
        return self.reduce(s, z, pos.to(s.dtype), batch, num_graphs)

    @torch.no_grad()
    def fit_statistics(
        self, y: Tensor, z: Tensor, pos: Tensor, batch: Tensor, num_graphs: int | None = None
    ) -> HeadStatistics:
        """Statistics for this head from a training set; the base returns the identity.

        Args:
            y: targets ``[G, out_channels]``.
            z: atomic numbers ``[N]``.
            pos: coordinates ``[N, 3]``.
            batch: graph id per atom ``[N]``.
            num_graphs: ``G`` (default ``batch.max() + 1``).

        Returns:
            :class:`HeadStatistics` in float64, to pass to :meth:`set_statistics`.
        """
        zeros = torch.zeros(self.out_channels, dtype=torch.float64)
        return HeadStatistics(zeros, torch.ones_like(zeros), None)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.in_channels}, out_channels={self.out_channels})"


def _check_fit_inputs(
    y: Tensor, batch: Tensor, num_graphs: int | None, out_channels: int
) -> tuple[Tensor, int]:
    num_graphs = int(batch.max()) + 1 if num_graphs is None else num_graphs
    y = torch.as_tensor(y, dtype=torch.float64).reshape(num_graphs, -1)
    if y.shape[1] != out_channels:
        raise ValueError(f"y must be [G, {out_channels}], got {tuple(y.shape)}")
    return y, num_graphs


def _std(x: Tensor) -> Tensor:
    """Column std, or 1 where it is undefined or zero."""
    if x.shape[0] < 2:
        return torch.ones(x.shape[1], dtype=x.dtype)
    std = x.std(dim=0)
    return torch.where(std > 0, std, torch.ones_like(std))


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
        r"""Least-squares per-element references, then mean and std of the per-atom residual.

        .. math::
            a = \arg\min_a \sum_G \Big(y_G - \sum_z n_{G,z} a_z\Big)^2, \qquad
            \mu, \sigma = \mathrm{mean}, \mathrm{std}\ \text{of}\ \frac{y_G - \sum_z n_{G,z} a_z}{n_G}

        with :math:`n_{G,z}` the number of atoms of element ``z`` in molecule ``G``.
        """
        y, num_graphs = _check_fit_inputs(y, batch, num_graphs, self.out_channels)
        counts = torch.zeros(num_graphs, MAX_Z + 1, dtype=torch.float64)
        counts.index_put_((batch, z), torch.ones(z.shape[0], dtype=torch.float64), accumulate=True)
        present = torch.nonzero(counts.sum(0)).flatten()
        a = counts[:, present]
        solution = torch.linalg.lstsq(a, y, driver="gelsd").solution
        atomref = torch.zeros(MAX_Z + 1, self.out_channels, dtype=torch.float64)
        atomref[present] = solution
        per_atom = (y - a @ solution) / counts.sum(1, keepdim=True).clamp_min(1)
        return HeadStatistics(per_atom.mean(0), _std(per_atom), atomref)


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
        """Mean and std of the targets; no references."""
        y, _ = _check_fit_inputs(y, batch, num_graphs, self.out_channels)
        return HeadStatistics(y.mean(0), _std(y), None)


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
            if not bool(torch.isfinite(weight).all()):
                from flt3d.datasets.elements import element_symbol

                unknown = sorted(set(z[~torch.isfinite(weight)].tolist()))
                names = ", ".join(element_symbol(n) for n in unknown)
                raise ValueError(
                    f"no atomic mass for element(s) {names} without ASE; install "
                    "'flt3d[molecules]' or use center='charge' or 'geometry'"
                )
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
        design = torch.zeros(num_graphs, MAX_Z + 1, dtype=torch.float64)
        design.index_put_((batch, z), r2, accumulate=True)
        present = torch.nonzero(torch.bincount(z, minlength=MAX_Z + 1)).flatten()
        w = torch.linalg.lstsq(design[:, present], y, driver="gelsd").solution.clamp_min(0.05)
        atomref = torch.zeros(MAX_Z + 1, 1, dtype=torch.float64)
        atomref[present] = w + torch.log(-torch.expm1(-w))  # softplus^{-1}(w)
        zeros = torch.zeros(1, dtype=torch.float64)
        return HeadStatistics(zeros, torch.ones_like(zeros), atomref)


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
