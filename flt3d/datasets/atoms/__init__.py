r"""Atomistic structures with energies and forces, from any file ASE reads, as PyG ``Data``.

:func:`read_structures` reads extxyz, ASE databases (``.db``), trajectories (``.traj``) and the
other formats ``ase.io`` knows, and :class:`AtomsDataset` caches the result as an
``InMemoryDataset``. Each structure becomes one ``Data`` with

==========  ===================  ==============================================================
``z``       ``long [N]``         atomic numbers
``pos``     ``float32 [N, 3]``   Cartesian coordinates, Å
``energy``  ``float64 [1, 1]``   total energy, eV
``forces``  ``float32 [N, 3]``   forces :math:`-\partial E / \partial \mathbf{r}`, eV/Å (only
                                 when the file has them, then for every structure)
``cell``    ``float32 [1, 3, 3]``  lattice vectors as rows, Å (zeros for an open cluster)
``pbc``     ``bool [1, 3]``      periodic boundary conditions along the cell vectors
``natoms``  ``long [1]``         :math:`N`
``idx``     ``long [1]``         position of the structure in the file (0-based)
``y``       ``float32 [1, P]``   the scalar ``properties`` asked for, in that order (only when
                                 some are asked for)
==========  ===================  ==============================================================

so a batch has ``energy [B, 1]``, ``cell [B, 3, 3]``, ``pbc [B, 3]``, ``natoms [B]`` and
``forces`` of the same shape as ``pos``. Energies stay float64: total energies of large
structures would lose meV in float32.

Energies, forces and properties are looked up under their key in ``atoms.info`` (forces in
``atoms.arrays``) and, where absent there, in the results of the attached calculator, which is
where ASE puts ``energy`` and ``forces`` when it reads an extxyz file or a database. Nothing is
dropped silently: a file that cannot be parsed and every structure that lacks a label or holds
a NaN raises ``ValueError`` naming the file and the structure (0-based, like ``idx``). So does a
structure with a coordinate beyond :data:`~flt3d.datasets.molecules.MAX_COORDINATE` (±10⁴ Å;
float32 ``pos`` would round its bond lengths) or with two atoms at the same position (a repeated
line, not a structure), as for :func:`~flt3d.datasets.read_molecules`.

ASE comes with ``pip install 'flt3d[molecules]'`` and is imported only when a file is read.

The package holds one part per module: :mod:`~flt3d.datasets.atoms.samples` (the shipped
samples), :mod:`~flt3d.datasets.atoms.keys` (checks of the keys and index, the label lookup),
:mod:`~flt3d.datasets.atoms.reader` (:func:`read_structures`) and
:mod:`~flt3d.datasets.atoms.dataset` (the cached :class:`AtomsDataset`, its split and
:class:`AtomRef`); every public name is re-exported here.
"""

from .dataset import AtomRef, AtomsDataset
from .reader import read_structures
from .samples import EMT_COPPER_SAMPLE_PATH, ION_WATER_SAMPLE_PATH, SALT_CLUSTERS_SAMPLE_PATH

__all__ = [
    "EMT_COPPER_SAMPLE_PATH",
    "ION_WATER_SAMPLE_PATH",
    "SALT_CLUSTERS_SAMPLE_PATH",
    "AtomRef",
    "AtomsDataset",
    "read_structures",
]
