"""Datasets and readers: QM9 (offline, from ``qm9pack`` or a shipped sample), molecule files,
and point clouds from mesh files and ModelNet-style folders.

Optional dependencies (pandas, RDKit, ASE, ``qm9pack``) come with
``pip install 'flt3d[molecules]'``, trimesh with ``pip install 'flt3d[pointclouds]'``; they are
imported only by the functions that need them.
"""

from flt3d.atomistic.elements import SYMBOLS, atomic_number, element_symbol

from . import qm9
from .atoms import (
    EMT_COPPER_SAMPLE_PATH,
    ION_WATER_SAMPLE_PATH,
    SALT_CLUSTERS_SAMPLE_PATH,
    AtomRef,
    AtomsDataset,
    read_structures,
)
from .molecules import (
    MOLECULE_EXTENSIONS,
    check_elements,
    from_ase,
    from_rdkit,
    from_smiles,
    read_molecules,
)
from .pointclouds import (
    MESH_EXTENSIONS,
    SHAPES_SAMPLE_PATH,
    ModelNetFolder,
    read_point_cloud,
    shape_augmentation,
    shapes_sample_root,
)
from .qm9 import (  # noqa: F401  (exported through qm9.__all__ below)
    HARTREE_TO_EV,
    QM9,
    QM9_COLUMNS,
    QM9_ELEMENTS,
    QM9_SAMPLE_PATH,
    QM9_SAMPLE_SIZE,
    QM9_SIZE,
    QM9_Z,
    TARGETS,
    UNITS,
    head_for_target,
    qm9pack_files,
    read_qm9_csv,
    read_qm9_frame,
    standard_split,
    target_index,
)

#: the readers' names, then QM9's (listed once, in :mod:`flt3d.datasets.qm9`)
__all__ = [
    "EMT_COPPER_SAMPLE_PATH",
    "ION_WATER_SAMPLE_PATH",
    "MESH_EXTENSIONS",
    "MOLECULE_EXTENSIONS",
    "SALT_CLUSTERS_SAMPLE_PATH",
    "SHAPES_SAMPLE_PATH",
    "SYMBOLS",
    "AtomRef",
    "AtomsDataset",
    "ModelNetFolder",
    "atomic_number",
    "check_elements",
    "element_symbol",
    "from_ase",
    "from_rdkit",
    "from_smiles",
    "read_molecules",
    "read_point_cloud",
    "read_structures",
    "shape_augmentation",
    "shapes_sample_root",
    *qm9.__all__,
]
