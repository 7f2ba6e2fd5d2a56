r"""Unit conversions of the atomistic properties, from :mod:`ase.units` (CODATA 2014).

Coordinates are in ångström (Å) and charges in units of the elementary charge e, as in ASE;
these factors turn a head's raw sums into the units the targets are reported in.
"""

from __future__ import annotations

from ase.units import Bohr, Debye

__all__ = ["BOHR2_PER_ANGSTROM2", "DEBYE_PER_E_ANGSTROM"]

DEBYE_PER_E_ANGSTROM: float = 1.0 / Debye
"""Debye per elementary charge times ångström, about 4.803205 (``1 / ase.units.Debye``)."""

BOHR2_PER_ANGSTROM2: float = 1.0 / Bohr**2
"""Square bohr per square ångström, about 3.571065 (``1 / ase.units.Bohr ** 2``)."""
