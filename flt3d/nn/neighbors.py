r"""Neighbour lists within a cutoff, on flat PyG batches, and the smooth cutoff envelope.

Pairs closer than a cutoff are found by `vesin <https://github.com/Luthaf/vesin>`_ (cell
lists, periodic cells included); displacements are then recomputed in torch from ``pos`` (and
``cell``), so they carry gradients to the coordinates (forces) and to the cell (stress):

.. math::
    \Delta_{ij} = r_i - r_j - S_{ij} \cdot \mathrm{cell},

where :math:`S_{ij}` is the integer shift of the periodic image of ``j`` that is near ``i``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from flt3d.nn.graph import check_batch, gather

__all__ = ["Neighbors", "neighbor_list", "local_neighbors", "cosine_cutoff", "spatial_order"]


class Neighbors:
    """Directed pairs ``(i, j)`` within a cutoff, each ordered pair once, sorted by ``i``.

    Attributes:
        index: ``[2, P]`` long, rows ``i`` (receiver) and ``j`` (sender).
        shift: ``[P, 3]`` integer periodic shifts (as floats), or ``None`` without a cell.
        cutoff: the cutoff they were found with.
        self_loops: whether ``(i, i)`` pairs with zero shift are included.
        cell: the cell the list was found in (``[3, 3]`` or ``[G, 3, 3]``, the tensor passed
            in, so displacements differentiate through it: stress), or ``None``.
        batch: graph id per atom, for one cell per graph.
    """

    def __init__(
        self,
        index: Tensor,
        shift: Tensor | None,
        cutoff: float,
        self_loops: bool,
        *,
        cell: Tensor | None = None,
        batch: Tensor | None = None,
    ) -> None:
        self.index = index
        self.shift = shift
        self.cutoff = float(cutoff)
        self.self_loops = bool(self_loops)
        self.cell = cell
        self.batch = batch

    @property
    def periodic(self) -> bool:
        """Whether the pairs cross periodic boundaries (found with a cell)."""
        return self.shift is not None

    @property
    def num_pairs(self) -> int:
        """``P``."""
        return int(self.index.shape[1])

    def displacements(self, pos: Tensor, cell: Tensor | None = None, batch: Tensor | None = None):
        r""":math:`\Delta_{ij} = r_i - r_j - S_{ij}\cdot\mathrm{cell}`, ``[P, D]``, differentiable
        (``cell`` and ``batch`` default to those the list was found with)."""
        cell = self.cell if cell is None else cell
        batch = self.batch if batch is None else batch
        i, j = self.index
        delta = gather(pos, i) - gather(pos, j)
        if self.shift is not None and cell is not None:
            cell = cell.to(pos.dtype)
            if cell.dim() == 2:
                delta = delta - self.shift.to(pos.dtype) @ cell
            else:  # one cell per graph, [G, 3, 3]
                graph = batch[i]
                delta = delta - torch.einsum("pd,pde->pe", self.shift.to(pos.dtype), cell[graph])
        return delta

    def __repr__(self) -> str:
        return f"Neighbors(num_pairs={self.num_pairs}, cutoff={self.cutoff})"


def _as_3d(points: np.ndarray) -> np.ndarray:
    if points.shape[1] == 3:
        return points
    out = np.zeros((points.shape[0], 3), dtype=points.dtype)
    out[:, : points.shape[1]] = points
    return out


def neighbor_list(
    pos: Tensor,
    batch: Tensor | None = None,
    *,
    cutoff: float,
    cell: Tensor | None = None,
    pbc: Tensor | bool | None = None,
    self_loops: bool = False,
    num_graphs: int | None = None,
) -> Neighbors:
    r"""All ordered pairs of atoms of the same graph closer than ``cutoff``.

    Without a cell, the graphs of a batch are searched in one call to vesin, laid side by side
    with gaps wider than the cutoff (no pair can cross graphs); with a cell (``[3, 3]`` or one
    per graph, ``[G, 3, 3]``, rows are the cell vectors) each graph is searched on its own,
    periodic along the axes ``pbc`` marks. Coordinates of 1 or 2 dimensions are padded to 3.
    The search itself is not differentiated; :meth:`Neighbors.displacements` is.

    Args:
        pos: coordinates, ``[N, D]`` with ``D <= 3``.
        batch: graph id per atom, ``[N]`` (default one graph).
        cutoff: the cutoff radius, positive.
        cell: periodic cell, ``[3, 3]`` or ``[G, 3, 3]`` (default none: open boundaries).
        pbc: periodic axes, a bool or ``[3]`` / ``[G, 3]`` bools (default all, with a cell).
        self_loops: include each atom's pair with itself (zero shift).
        num_graphs: number of graphs (default from ``batch``).

    Returns:
        :class:`Neighbors`, pairs sorted by receiver ``i``.

    Example:
        >>> import torch
        >>> pos = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [3.0, 0, 0]])
        >>> neighbor_list(pos, cutoff=1.5).index.tolist()
        [[0, 1], [1, 0]]
    """
    try:
        import vesin
    except ImportError as err:  # pragma: no cover - vesin is a core dependency
        raise ImportError("neighbour lists need vesin: pip install vesin") from err
    if not (isinstance(cutoff, (int, float)) and math.isfinite(cutoff) and cutoff > 0):
        raise ValueError(f"cutoff must be a positive number, got {cutoff!r}")
    if pos.dim() != 2 or not 1 <= pos.shape[1] <= 3:
        raise ValueError(f"pos must be [N, D] with D in 1..3, got {tuple(pos.shape)}")
    n = pos.shape[0]
    batch, counted = check_batch(batch, n, pos.device)
    num_graphs = counted if num_graphs is None else num_graphs
    points = _as_3d(pos.detach().to("cpu", torch.float64).numpy())
    graph = batch.cpu().numpy()
    search = vesin.NeighborList(cutoff=float(cutoff), full_list=True, sorted=True)
    shifts = None
    if n == 0:
        i = j = np.zeros(0, dtype=np.int64)
    elif cell is None:
        # graphs side by side along x, each gap wider than the cutoff
        lo = np.full(num_graphs, np.inf)
        hi = np.full(num_graphs, -np.inf)
        np.minimum.at(lo, graph, points[:, 0])
        np.maximum.at(hi, graph, points[:, 0])
        width = np.where(np.isfinite(hi), hi - lo, 0.0) + 2 * cutoff + 1.0
        start = np.concatenate([[0.0], np.cumsum(width)[:-1]]) - np.where(np.isfinite(lo), lo, 0)
        laid = points.copy()
        laid[:, 0] += start[graph]
        i, j = search.compute(laid, np.zeros((3, 3)), False, "ij")
        i, j = i.astype(np.int64), j.astype(np.int64)
    else:
        if pos.shape[1] != 3:
            raise ValueError(f"a periodic cell needs 3D coordinates, got pos {tuple(pos.shape)}")
        cells = cell.detach().to("cpu", torch.float64).numpy()
        if cells.shape == (3, 3):
            cells = np.broadcast_to(cells, (num_graphs, 3, 3))
        if cells.shape != (num_graphs, 3, 3):
            raise ValueError(
                f"cell must be [3, 3] or [G, 3, 3] = [{num_graphs}, 3, 3], got {tuple(cell.shape)}"
            )
        periodic = (
            np.ones((num_graphs, 3), dtype=bool)
            if pbc is None
            else np.asarray(pbc.cpu().numpy() if isinstance(pbc, Tensor) else pbc, dtype=bool)
        )
        periodic = np.broadcast_to(periodic, (num_graphs, 3))
        order = np.argsort(graph, kind="stable")
        counts = np.bincount(graph, minlength=num_graphs)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        parts_i, parts_j, parts_s = [], [], []
        for g in range(num_graphs):
            rows = order[starts[g] : starts[g] + counts[g]]
            if rows.size == 0:
                continue
            box = cells[g] if periodic[g].any() else np.zeros((3, 3))
            gi, gj, gs = search.compute(points[rows], box, periodic[g].tolist(), "ijS")
            parts_i.append(rows[gi.astype(np.int64)])
            parts_j.append(rows[gj.astype(np.int64)])
            parts_s.append(gs)
        i = np.concatenate(parts_i) if parts_i else np.zeros(0, dtype=np.int64)
        j = np.concatenate(parts_j) if parts_j else np.zeros(0, dtype=np.int64)
        s = np.concatenate(parts_s) if parts_s else np.zeros((0, 3))
        keep = np.argsort(i, kind="stable")
        i, j, s = i[keep], j[keep], s[keep]
        shifts = torch.from_numpy(np.ascontiguousarray(s, dtype=np.float64)).to(pos.device)
    if self_loops:
        i = np.concatenate([i, np.arange(n)])
        j = np.concatenate([j, np.arange(n)])
        keep = np.argsort(i, kind="stable")
        i, j = i[keep], j[keep]
        if shifts is not None:
            shifts = torch.cat([shifts, shifts.new_zeros(n, 3)])[torch.from_numpy(keep)]
    index = torch.from_numpy(np.stack([i, j]).astype(np.int64)).to(pos.device)
    return Neighbors(
        index, shifts, cutoff, self_loops, cell=cell, batch=None if cell is None else batch
    )


def local_neighbors(
    neighbors: Neighbors | None, pos: Tensor, batch: Tensor, num_graphs: int, cutoff: float
) -> Neighbors:
    """The neighbour list a local layer needs: the one given (checked: self loops and at
    least ``cutoff``), or a fresh one with self loops."""
    if neighbors is None:
        return neighbor_list(pos, batch, cutoff=cutoff, self_loops=True, num_graphs=num_graphs)
    if not neighbors.self_loops or neighbors.cutoff < cutoff:
        raise ValueError(
            f"neighbors must have self loops and a cutoff of at least {cutoff}, got "
            f"self_loops={neighbors.self_loops}, cutoff={neighbors.cutoff}"
        )
    return neighbors


def cosine_cutoff(r: Tensor, cutoff: float) -> Tensor:
    r"""Smooth envelope :math:`\tfrac12(\cos(\pi r / r_c) + 1)` for :math:`r < r_c`, else 0.

    It is 1 at ``r = 0`` with zero slope, and falls to 0 at the cutoff with zero slope, so a
    function times it is continuous with a continuous derivative where pairs enter or leave
    the neighbour list (smooth forces).
    """
    inside = r < cutoff
    return torch.where(inside, 0.5 * (torch.cos(math.pi * r / cutoff) + 1), torch.zeros_like(r))


def _spread_bits(x: Tensor) -> Tensor:
    """Put bit k of a 21-bit integer at bit 3k (the Morton code's per-axis spread)."""
    x = x & 0x1FFFFF
    x = (x | (x << 32)) & 0x1F00000000FFFF
    x = (x | (x << 16)) & 0x1F0000FF0000FF
    x = (x | (x << 8)) & 0x100F00F00F00F00F
    x = (x | (x << 4)) & 0x10C30C30C30C30C3
    return (x | (x << 2)) & 0x1249249249249249


@torch.no_grad()
def spatial_order(pos: Tensor, batch: Tensor | None = None, *, cell_size: float) -> Tensor:
    """A permutation that puts atoms in memory the way they lie in space.

    Atoms are sorted by graph, then along a Morton (Z-order) curve over cubes of side
    ``cell_size`` (each graph's own grid, from its lowest corner): atoms close in space end up
    close in memory, so the gathers and scatters of a neighbour list's pair sums hit the cache
    (on a random order of 10^5 atoms they miss it, and cost per atom grows with N). Models are
    equivariant to the order of atoms, so ``pos[order]`` gives the same results, permuted.

    Args:
        pos: coordinates ``[N, D]`` (``D <= 3``; not differentiated).
        batch: graph id per atom ``[N]`` (optional).
        cell_size: side of the grid's cubes, e.g. the cutoff.

    Returns:
        ``order [N]`` long; ``torch.argsort(order)`` undoes it.
    """
    if not (math.isfinite(cell_size) and cell_size > 0):
        raise ValueError(f"cell_size must be a positive number, got {cell_size}")
    batch, num_graphs = check_batch(batch, pos.shape[0], pos.device)
    pos = pos.detach().double()
    low = pos.new_full((num_graphs, pos.shape[1]), math.inf)
    low = low.scatter_reduce(0, batch.unsqueeze(-1).expand_as(pos), pos, reduce="amin")
    cells = ((pos - low[batch]) / cell_size).floor().clamp(0, 2**21 - 1).long()
    code = torch.zeros_like(batch)
    for axis in range(cells.shape[1]):
        code = code | (_spread_bits(cells[:, axis]) << axis)
    order = torch.argsort(code, stable=True)
    return order[torch.argsort(batch[order], stable=True)]
