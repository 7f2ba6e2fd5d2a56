r"""Molecules from files, SMILES, ASE and RDKit, as PyG ``Data`` with ``z`` and ``pos``.

Every reader returns the same form as :class:`~flt3d.datasets.QM9` (without ``y``):

* ``z``: ``long [n]``, atomic numbers (all atoms, hydrogens included),
* ``pos``: ``float32 [n, 3]``, Cartesian coordinates in Å,
* ``smiles``: ``str``, where the source knows the bonding (RDKit molecules, SMILES input),
* ``num_nodes``: ``n``.

Supported inputs (by file extension, case-insensitive):

=====================  ========================================================================
``.xyz``, ``.extxyz``  every frame, read with ``ase.io.read(path, index=":", format="extxyz")``
``.sdf``               every record, read with ``rdkit.Chem.SDMolSupplier(path, removeHs=False)``
``.mol``               one molecule, read with ``rdkit.Chem.MolFromMolFile(path, removeHs=False)``
``.smi``, ``.smiles``  one SMILES per line (first token; blank and ``#`` lines skipped), embedded
                       in 3D with :func:`from_smiles`
=====================  ========================================================================

Nothing is dropped silently: a file, record, line or frame that cannot be read raises
``ValueError`` naming it. So do geometries that models would silently get wrong:

* NaN or infinite coordinates;
* coordinates beyond :data:`MAX_COORDINATE` (±10⁴ Å): finite, but ``pos`` is float32, whose
  resolution there is 0.001 Å and at 10⁶ Å 0.06 Å, so bond lengths would be rounded (models are
  translation invariant: centre such a structure before reading it);
* two atoms at the same position (equal float32 coordinates), which is never a molecule but a
  repeated line or record: the models would run, as their distances have a zero gradient at
  zero, and predict a meaningless energy. Atoms that are merely close are kept.

RDKit and ASE come with ``pip install 'flt3d[molecules]'`` and are imported only when used.

The package holds one part per module: :mod:`~flt3d.datasets.molecules.geometry` (the geometry
checks, :data:`MAX_COORDINATE`), :mod:`~flt3d.datasets.molecules.convert` (:func:`from_ase`,
:func:`from_rdkit`, :func:`from_smiles`), :mod:`~flt3d.datasets.molecules.files`
(:func:`read_molecules`) and :mod:`~flt3d.datasets.molecules.element_check`
(:func:`check_elements`); every public name is re-exported here.
"""

from .convert import from_ase, from_rdkit, from_smiles
from .element_check import check_elements
from .files import MOLECULE_EXTENSIONS, read_molecules
from .geometry import (  # the two private checks: flt3d.datasets.qm9.csv_file imports them here
    MAX_COORDINATE,
    _coincident_atoms,  # noqa: F401
    _far_atoms,  # noqa: F401
)

__all__ = [
    "MAX_COORDINATE",
    "MOLECULE_EXTENSIONS",
    "check_elements",
    "from_ase",
    "from_rdkit",
    "from_smiles",
    "read_molecules",
]
