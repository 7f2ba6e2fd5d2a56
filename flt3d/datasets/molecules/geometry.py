"""The geometry checks of every molecule reader, and the ``Data`` they all return.

:data:`MAX_COORDINATE` and the rejection of NaN or infinite coordinates, coordinates beyond it
and two atoms at one position; ``_molecule_data`` builds the checked ``z`` / ``pos`` ``Data``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data

from flt3d.atomistic.elements import SYMBOLS

MAX_COORDINATE: float = 1e4
"""Largest coordinate magnitude, in Å, that the readers accept: up to it, float32 ``pos``
resolves 0.001 Å."""


def _far_atoms(pos: np.ndarray) -> np.ndarray:
    """Mask of the atoms of ``pos [N, 3]`` (finite) with a coordinate beyond MAX_COORDINATE."""
    return (np.abs(pos) > MAX_COORDINATE).any(axis=1)


def _coincident_atoms(pos: np.ndarray, group: np.ndarray | None = None) -> np.ndarray:
    """Mask of the atoms of ``pos [N, 3]`` at the float32 position of an earlier atom of the
    same ``group`` (molecule id per atom; default: all one molecule)."""
    pos = np.asarray(pos, dtype=np.float32)
    keys = [pos[:, 2], pos[:, 1], pos[:, 0]] + ([] if group is None else [group])
    order = np.lexsort(keys)  # stable: of equal rows, the earliest atom comes first
    same = (np.diff(pos[order], axis=0) == 0).all(axis=1)
    if group is not None:
        same &= np.diff(group[order]) == 0
    mask = np.zeros(len(pos), dtype=bool)
    mask[order[1:][same]] = True
    return mask


def _check_geometry(pos: np.ndarray, what: str) -> None:
    """Reject NaN or infinite coordinates, coordinates beyond MAX_COORDINATE and two atoms at
    one position in ``pos [N, 3]`` (float64), naming ``what`` and the atoms."""
    finite = np.isfinite(pos).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite).tolist()
        raise ValueError(
            f"{what} has NaN or infinite coordinates (atom(s) {bad[:5]}); expected finite "
            "Cartesian coordinates in Å"
        )
    far = _far_atoms(pos)
    if far.any():
        bad = np.flatnonzero(far).tolist()
        raise ValueError(
            f"{what} has coordinates beyond ±{MAX_COORDINATE:g} Å (atom(s) {bad[:5]}, up to "
            f"{np.abs(pos).max():.6g} Å), where float32 positions would round bond lengths; "
            "expected Cartesian coordinates in Å, centred near the origin"
        )
    repeated = _coincident_atoms(pos)
    if repeated.any():
        j = int(np.flatnonzero(repeated)[0])
        pos32 = pos.astype(np.float32)
        i = int(np.flatnonzero((pos32 == pos32[j]).all(axis=1))[0])
        raise ValueError(
            f"{what} has atoms {i} and {j} at the same position {pos32[j].tolist()}; expected "
            "distinct positions (a repeated atom line or record?)"
        )


def _molecule_data(z: Any, pos: Any, what: str, smiles: str | None = None) -> Data:
    z = torch.as_tensor(np.asarray(z), dtype=torch.long).reshape(-1)
    pos = np.asarray(pos, dtype=np.float64)
    if z.numel() == 0:
        raise ValueError(f"{what} has no atoms; expected at least one atom")
    if pos.shape != (z.numel(), 3):
        raise ValueError(
            f"{what}: expected coordinates of shape [{z.numel()}, 3], got {tuple(pos.shape)}"
        )
    _check_geometry(pos, what)
    pos = torch.as_tensor(pos, dtype=torch.float32)
    if (z < 1).any() or (z >= len(SYMBOLS)).any():
        bad = sorted(set(z[(z < 1) | (z >= len(SYMBOLS))].tolist()))
        raise ValueError(
            f"{what} has atomic number(s) {bad}; expected chemical elements, Z in [1, 118]"
        )
    data = Data(z=z, pos=pos, num_nodes=z.numel())
    if smiles is not None:
        data.smiles = smiles
    return data
