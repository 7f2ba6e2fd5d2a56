"""Molecules from objects: ``ase.Atoms``, RDKit ``Mol`` conformers, and SMILES embedded in 3D.

:func:`from_ase`, :func:`from_rdkit` (explicit hydrogens, a 3D conformer) and
:func:`from_smiles` (ETKDG v3 embedding, relaxed with MMFF94 or UFF).
"""

from __future__ import annotations

from typing import Any

from torch_geometric.data import Data

from flt3d.nn.checks import check_index

from .._optional import import_optional
from .geometry import _molecule_data


def from_ase(atoms: Any, *, name: str | None = None) -> Data:
    """A molecule from an ``ase.Atoms`` object.

    Cell and periodic boundary conditions are ignored; only species and positions are kept.

    Args:
        atoms: the ``ase.Atoms``.
        name: how to call the molecule in error messages. Default: ``repr`` of ``atoms``.

    Returns:
        ``Data`` with ``z``, ``pos`` and ``num_nodes``.

    Raises:
        ValueError: naming the molecule if it is not an ``ase.Atoms``, has no atoms, has NaN
            or infinite positions, positions beyond :data:`MAX_COORDINATE`, two atoms at the
            same position, or a dummy atom (Z = 0).
    """
    what = name if name is not None else repr(atoms)
    if not (hasattr(atoms, "get_atomic_numbers") and hasattr(atoms, "get_positions")):
        raise ValueError(f"{what}: expected an ase.Atoms, got {type(atoms).__name__}")
    return _molecule_data(atoms.get_atomic_numbers(), atoms.get_positions(), what)


def from_rdkit(
    mol: Any,
    *,
    conf_id: int = -1,
    allow_implicit_hydrogens: bool = False,
    name: str | None = None,
) -> Data:
    """A molecule from an RDKit ``Mol`` with a 3D conformer.

    Hydrogens must be explicit atoms with coordinates (``Chem.AddHs(mol, addCoords=True)``,
    or read files with ``removeHs=False``): a molecule whose hydrogens are only implicit would
    silently lose them, so it is rejected unless ``allow_implicit_hydrogens=True``.

    Args:
        mol: the ``rdkit.Chem.Mol``.
        conf_id: conformer to take. Default ``-1``, RDKit's default conformer.
        allow_implicit_hydrogens: keep molecules with implicit hydrogens, which then have no
            atoms in the result. Default ``False``.
        name: how to call the molecule in error messages. Default: its SMILES.

    Returns:
        ``Data`` with ``z``, ``pos``, ``smiles`` (canonical, hydrogens implicit) and
        ``num_nodes``.

    Raises:
        ImportError: naming the ``molecules`` extra if RDKit is missing.
        ValueError: naming the molecule if it is not a ``Mol``, has no atoms, no conformer
            (or not ``conf_id``), a 2D conformer, implicit hydrogens, or coordinates that are
            NaN, beyond :data:`MAX_COORDINATE` or the same for two atoms.
    """
    Chem = import_optional("rdkit.Chem", "converting RDKit molecules")
    if not isinstance(mol, Chem.Mol):
        what = name if name is not None else repr(mol)
        raise ValueError(f"{what}: expected an rdkit.Chem.Mol, got {type(mol).__name__}")
    smiles = _rdkit_smiles(Chem, mol)
    what = name if name is not None else f"molecule {smiles!r}"
    if mol.GetNumAtoms() == 0:
        raise ValueError(f"{what} has no atoms; expected at least one atom")
    if mol.GetNumConformers() == 0:
        raise ValueError(
            f"{what} has no conformer; expected 3D coordinates (read a 3D file, or embed one "
            "with from_smiles or rdkit.Chem.AllChem.EmbedMolecule)"
        )
    try:
        conformer = mol.GetConformer(conf_id)
    except ValueError:
        raise ValueError(
            f"{what} has no conformer with id {conf_id}; it has {mol.GetNumConformers()}"
        ) from None
    if not conformer.Is3D():
        raise ValueError(
            f"{what} has a 2D conformer (a drawing, not a geometry); expected 3D coordinates"
        )
    if not allow_implicit_hydrogens:
        try:
            implicit = sum(atom.GetTotalNumHs() for atom in mol.GetAtoms())
        except RuntimeError:
            mol.UpdatePropertyCache(strict=False)
            implicit = sum(atom.GetTotalNumHs() for atom in mol.GetAtoms())
        if implicit:
            raise ValueError(
                f"{what} has {implicit} implicit hydrogen(s) without coordinates; expected "
                "explicit hydrogens (read with removeHs=False, or Chem.AddHs(mol, "
                "addCoords=True)), or pass allow_implicit_hydrogens=True"
            )
    z = [atom.GetAtomicNum() for atom in mol.GetAtoms()]
    return _molecule_data(z, conformer.GetPositions(), what, smiles=smiles)


def _rdkit_smiles(Chem: Any, mol: Any) -> str:
    try:
        return Chem.MolToSmiles(Chem.RemoveHs(mol))
    except Exception:  # RemoveHs sanitizes, which unusual valences can fail
        return Chem.MolToSmiles(mol)


def from_smiles(smiles: str, *, seed: int = 0, optimize: bool = True) -> Data:
    """A molecule with a 3D geometry generated from a SMILES string.

    Hydrogens are added (``Chem.AddHs``), one conformer is embedded with ETKDG v3 seeded by
    ``seed`` (so the geometry is the same on every run), retried from random coordinates if
    the first embedding fails, and relaxed with the MMFF94 force field (UFF where MMFF lacks
    parameters). The result is a force-field geometry, not a DFT one like QM9's.

    Args:
        smiles: the SMILES string.
        seed: random seed of the embedding, in ``[0, 2**31)``. Default ``0``.
        optimize: relax the embedded geometry with a force field. Default ``True``.

    Returns:
        ``Data`` with ``z``, ``pos``, ``smiles`` (the input string) and ``num_nodes``.

    Raises:
        ImportError: naming the ``molecules`` extra if RDKit is missing.
        ValueError: naming ``smiles`` if RDKit cannot parse it, it has no atoms or a dummy
            atom ``*``, no 3D embedding is found (or RDKit fails while embedding it), or no
            force field covers it; naming ``seed`` if it is not an integer in ``[0, 2**31)``.

    Example:
        >>> data = from_smiles("CC")
        >>> data.z.tolist()
        [6, 6, 1, 1, 1, 1, 1, 1]
    """
    Chem = import_optional("rdkit.Chem", "converting SMILES")
    AllChem = import_optional("rdkit.Chem.AllChem", "embedding SMILES in 3D")
    if not isinstance(smiles, str):
        raise ValueError(f"expected a SMILES string, got {smiles!r}")
    seed = check_index(seed, "seed", "a non-negative integer")
    if not 0 <= seed < 2**31:  # RDKit keeps the seed in a C int
        raise ValueError(f"seed must be a non-negative integer below 2**31, got {seed}")
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ValueError(f"could not parse SMILES {smiles!r}; expected a valid SMILES string")
    if mol.GetNumAtoms() == 0:
        raise ValueError(f"SMILES {smiles!r} has no atoms; expected a molecule")
    if any(atom.GetAtomicNum() == 0 for atom in mol.GetAtoms()):
        raise ValueError(
            f"SMILES {smiles!r} has a dummy atom '*' (atomic number 0); expected chemical "
            "elements only"
        )
    mol = Chem.AddHs(mol)
    params = AllChem.ETKDGv3()
    params.randomSeed = seed
    try:
        if AllChem.EmbedMolecule(mol, params) != 0:
            params.useRandomCoords = True
            if AllChem.EmbedMolecule(mol, params) != 0:
                raise ValueError(f"RDKit found no 3D embedding for SMILES {smiles!r}")
        if optimize:
            if AllChem.MMFFHasAllMoleculeParams(mol):
                AllChem.MMFFOptimizeMolecule(mol, maxIters=2000)
            elif AllChem.UFFHasAllMoleculeParams(mol):
                AllChem.UFFOptimizeMolecule(mol, maxIters=2000)
            else:
                raise ValueError(
                    f"neither MMFF94 nor UFF has parameters for SMILES {smiles!r}; pass "
                    "optimize=False to keep the unrelaxed embedding"
                )
    except RuntimeError as error:  # an RDKit invariant violated by an unusual molecule
        reason = " ".join(str(error).split()[:8])
        raise ValueError(f"RDKit failed to embed SMILES {smiles!r} in 3D: {reason}") from None
    data = from_rdkit(mol, name=f"SMILES {smiles!r}")
    data.smiles = smiles
    return data
