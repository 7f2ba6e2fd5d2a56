r"""QM9: 130,831 small organic molecules (H, C, N, O, F) with DFT geometries and 12 targets.

The molecules, their B3LYP/6-31G(2df,p) equilibrium geometries and properties come from
Ramakrishnan et al., *Quantum chemistry structures and properties of 134 kilo molecules*,
Sci. Data 1, 140022 (2014), doi:10.1038/sdata.2014.22. They are read offline from the CSV files
that the PyPI package ``qm9pack`` ships (``pip install 'flt3d[molecules]'``): 133,885 molecules
minus the 3,054 that fail the authors' geometry consistency check, the same 130,831 molecules
that PyTorch Geometric's ``QM9`` holds. A uniform random sample of 4,000 of them ships with
flt3d itself (``QM9(root, sample=True)``), so tests and examples run without ``qm9pack``.

Targets follow PyTorch Geometric's order and units (the first 12 columns of its ``QM9.y``),
with :math:`1\,\mathrm{Ha} = 27.211386246\,\mathrm{eV}`:

====  =======  ==================================  ===========
 i    name     quantity                            unit
====  =======  ==================================  ===========
 0    mu       dipole moment :math:`\mu`           D
 1    alpha    isotropic polarizability            a0^3
 2    homo     HOMO energy                         eV
 3    lumo     LUMO energy                         eV
 4    gap      HOMO-LUMO gap                       eV
 5    r2       electronic spatial extent <R^2>     a0^2
 6    zpve     zero-point vibrational energy       eV
 7    U0       internal energy at 0 K              eV
 8    U        internal energy at 298.15 K         eV
 9    H        enthalpy at 298.15 K                eV
 10   G        free energy at 298.15 K             eV
 11   Cv       heat capacity at 298.15 K           cal/(mol K)
====  =======  ==================================  ===========

Targets are stored as float32, like PyTorch Geometric's; for total energies of about
:math:`-10^4` eV that is a resolution of about 1 meV.

The package holds one part per module: :mod:`~flt3d.datasets.qm9.targets` (names, units,
heads), :mod:`~flt3d.datasets.qm9.split` (the standard split),
:mod:`~flt3d.datasets.qm9.source` (qm9pack's files and the shipped sample),
:mod:`~flt3d.datasets.qm9.csv_file` (the CSV parser) and :mod:`~flt3d.datasets.qm9.dataset`
(the :class:`QM9` dataset); every name is re-exported here.
"""

from .csv_file import QM9_COLUMNS, read_qm9_csv, read_qm9_frame
from .dataset import QM9
from .source import (
    QM9_ELEMENTS,
    QM9_SAMPLE_PATH,
    QM9_SAMPLE_SIZE,
    QM9_SIZE,
    QM9_Z,
    qm9pack_files,
)
from .split import standard_split
from .targets import HARTREE_TO_EV, TARGETS, UNITS, head_for_target, target_index

__all__ = [
    "HARTREE_TO_EV",
    "QM9",
    "QM9_COLUMNS",
    "QM9_ELEMENTS",
    "QM9_SAMPLE_PATH",
    "QM9_SAMPLE_SIZE",
    "QM9_SIZE",
    "QM9_Z",
    "TARGETS",
    "UNITS",
    "head_for_target",
    "qm9pack_files",
    "read_qm9_csv",
    "read_qm9_frame",
    "standard_split",
    "target_index",
]
