r"""The atomwise head: per-atom features to per-molecule properties, blind to the representation.

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

from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn

from flt3d.atomistic.elements import MAX_Z
from flt3d.atomistic.statistics import HeadStatistics, _as_atomref, _as_column
from flt3d.nn.graph import check_batch

__all__ = ["AtomwiseHead"]


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
