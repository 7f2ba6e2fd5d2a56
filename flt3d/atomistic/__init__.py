"""The atomistic layer: elements, units, atomic masses, target statistics and the property heads.

It sits on :mod:`flt3d.nn` and below the datasets and models: nothing here knows a dataset.
"""

from flt3d.atomistic.atomwise import AtomwiseHead
from flt3d.atomistic.elements import MAX_Z, SYMBOLS, atomic_number, element_symbol
from flt3d.atomistic.heads import (
    HEADS,
    DipoleHead,
    ElectronicSpatialExtentHead,
    ExtensiveHead,
    IntensiveHead,
    make_head,
)
from flt3d.atomistic.masses import atomic_masses
from flt3d.atomistic.statistics import (
    HeadStatistics,
    fit_extensive,
    fit_intensive,
    fit_spatial_extent,
)
from flt3d.atomistic.units import BOHR2_PER_ANGSTROM2, DEBYE_PER_E_ANGSTROM

__all__ = [
    "BOHR2_PER_ANGSTROM2",
    "DEBYE_PER_E_ANGSTROM",
    "HEADS",
    "MAX_Z",
    "SYMBOLS",
    "AtomwiseHead",
    "DipoleHead",
    "ElectronicSpatialExtentHead",
    "ExtensiveHead",
    "HeadStatistics",
    "IntensiveHead",
    "atomic_masses",
    "atomic_number",
    "element_symbol",
    "fit_extensive",
    "fit_intensive",
    "fit_spatial_extent",
    "make_head",
]
