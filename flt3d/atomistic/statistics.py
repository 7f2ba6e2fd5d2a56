r"""Target statistics of the heads and their least-squares fits on a training set.

A head's statistics are a mean :math:`\mu`, a std :math:`\sigma` and per-element references
:math:`a_z` (see :mod:`flt3d.atomistic.heads`), held in a :class:`HeadStatistics`. The fits
here take the targets ``y [G, out]`` of ``G`` molecules with atomic numbers ``z [N]`` and the
PyG ``batch`` vector, and return float64 statistics to pass to a head's ``set_statistics``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from flt3d.atomistic.elements import MAX_Z, atomic_number, element_symbol

__all__ = ["HeadStatistics", "fit_extensive", "fit_intensive", "fit_spatial_extent"]


class HeadStatistics(NamedTuple):
    """Target statistics of a head: ``mean`` and ``std`` ``[out]``, ``atomref`` ``[MAX_Z + 1, out]``.

    Unpacks into :meth:`AtomwiseHead.set_statistics
    <flt3d.atomistic.AtomwiseHead.set_statistics>` (``head.set_statistics(*stats)``).
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


@torch.no_grad()
def fit_extensive(
    y: Tensor, z: Tensor, batch: Tensor, num_graphs: int | None = None, out_channels: int = 1
) -> HeadStatistics:
    r"""Least-squares per-element references, then mean and std of the per-atom residual.

    .. math::
        a = \arg\min_a \sum_G \Big(y_G - \sum_z n_{G,z} a_z\Big)^2, \qquad
        \mu, \sigma = \mathrm{mean}, \mathrm{std}\ \text{of}\ \frac{y_G - \sum_z n_{G,z} a_z}{n_G}

    with :math:`n_{G,z}` the number of atoms of element ``z`` in molecule ``G``.

    Args:
        y: targets ``[G, out_channels]``.
        z: atomic numbers ``[N]``.
        batch: graph id per atom ``[N]``.
        num_graphs: ``G`` (default ``batch.max() + 1``).
        out_channels: targets per molecule.
    """
    y, num_graphs = _check_fit_inputs(y, batch, num_graphs, out_channels)
    counts = torch.zeros(num_graphs, MAX_Z + 1, dtype=torch.float64)
    counts.index_put_((batch, z), torch.ones(z.shape[0], dtype=torch.float64), accumulate=True)
    present = torch.nonzero(counts.sum(0)).flatten()
    a = counts[:, present]
    solution = torch.linalg.lstsq(a, y, driver="gelsd").solution
    atomref = torch.zeros(MAX_Z + 1, out_channels, dtype=torch.float64)
    atomref[present] = solution
    per_atom = (y - a @ solution) / counts.sum(1, keepdim=True).clamp_min(1)
    return HeadStatistics(per_atom.mean(0), _std(per_atom), atomref)


@torch.no_grad()
def fit_intensive(
    y: Tensor, batch: Tensor, num_graphs: int | None = None, out_channels: int = 1
) -> HeadStatistics:
    """Mean and std of the targets ``y [G, out_channels]``; no references."""
    y, _ = _check_fit_inputs(y, batch, num_graphs, out_channels)
    return HeadStatistics(y.mean(0), _std(y), None)


@torch.no_grad()
def fit_spatial_extent(
    y: Tensor, r2: Tensor, z: Tensor, batch: Tensor, num_graphs: int | None = None
) -> HeadStatistics:
    r"""Per-element weights :math:`w_z \ge 0.05` by least squares, as pre-softplus references.

    .. math::
        w = \arg\min_w \sum_G \Big(y_G - \sum_z w_z \sum_{i\in G, z_i = z} r^2_i\Big)^2,
        \qquad a_z = \mathrm{softplus}^{-1}(w_z)

    and :math:`\mu = 0`, :math:`\sigma = 1`.

    Args:
        y: targets ``[G, 1]``.
        r2: per-atom squared distance from the molecule's centre, in target units ``[N]``.
        z: atomic numbers ``[N]``.
        batch: graph id per atom ``[N]``.
        num_graphs: ``G`` (default ``batch.max() + 1``).
    """
    y, num_graphs = _check_fit_inputs(y, batch, num_graphs, 1)
    design = torch.zeros(num_graphs, MAX_Z + 1, dtype=torch.float64)
    design.index_put_((batch, z), r2.to(torch.float64), accumulate=True)
    present = torch.nonzero(torch.bincount(z, minlength=MAX_Z + 1)).flatten()
    w = torch.linalg.lstsq(design[:, present], y, driver="gelsd").solution.clamp_min(0.05)
    atomref = torch.zeros(MAX_Z + 1, 1, dtype=torch.float64)
    atomref[present] = w + torch.log(-torch.expm1(-w))  # softplus^{-1}(w)
    zeros = torch.zeros(1, dtype=torch.float64)
    return HeadStatistics(zeros, torch.ones_like(zeros), atomref)
