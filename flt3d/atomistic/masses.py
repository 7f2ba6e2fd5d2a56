"""Atomic masses of the elements, from :data:`ase.data.atomic_masses` (IUPAC 2016)."""

from __future__ import annotations

import torch
from ase.data import atomic_masses as _ase_masses
from torch import Tensor

from flt3d.atomistic.elements import MAX_Z

__all__ = ["atomic_masses"]


def atomic_masses() -> Tensor:
    """Atomic mass (u) of every atomic number, ``[MAX_Z + 1]`` float64; row 0 ("no element") is 0.

    Example:
        >>> round(float(atomic_masses()[6]), 3)
        12.011
    """
    masses = torch.as_tensor(_ase_masses[: MAX_Z + 1], dtype=torch.float64).clone()
    masses[0] = 0.0
    return masses
