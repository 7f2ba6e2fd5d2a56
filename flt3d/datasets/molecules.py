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
``ValueError`` naming it. RDKit and ASE come with ``pip install 'flt3d[molecules]'`` and are
imported only when used.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data

from ._optional import import_optional
from .elements import SYMBOLS, atomic_number, element_symbol

__all__ = [
    "MOLECULE_EXTENSIONS",
    "check_elements",
    "from_ase",
    "from_rdkit",
    "from_smiles",
    "read_molecules",
]

MOLECULE_EXTENSIONS: tuple[str, ...] = (".xyz", ".extxyz", ".sdf", ".mol", ".smi", ".smiles")
"""File extensions that :func:`read_molecules` reads."""


def _molecule_data(z: Any, pos: Any, what: str, smiles: str | None = None) -> Data:
    z = torch.as_tensor(np.asarray(z), dtype=torch.long).reshape(-1)
    pos = torch.as_tensor(np.asarray(pos, dtype=np.float64), dtype=torch.float32)
    if z.numel() == 0:
        raise ValueError(f"{what} has no atoms; expected at least one atom")
    if pos.shape != (z.numel(), 3):
        raise ValueError(
            f"{what}: expected coordinates of shape [{z.numel()}, 3], got {tuple(pos.shape)}"
        )
    if not torch.isfinite(pos).all():
        bad = torch.nonzero(~torch.isfinite(pos).all(dim=1)).flatten().tolist()
        raise ValueError(
            f"{what} has NaN or infinite coordinates (atom(s) {bad[:5]}); expected finite "
            "Cartesian coordinates in Å"
        )
    if (z < 1).any() or (z >= len(SYMBOLS)).any():
        bad = sorted(set(z[(z < 1) | (z >= len(SYMBOLS))].tolist()))
        raise ValueError(
            f"{what} has atomic number(s) {bad}; expected chemical elements, Z in [1, 118]"
        )
    data = Data(z=z, pos=pos, num_nodes=z.numel())
    if smiles is not None:
        data.smiles = smiles
    return data


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
            or infinite positions, or has a dummy atom (Z = 0).
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
            (or not ``conf_id``), a 2D conformer, NaN coordinates or implicit hydrogens.
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
        seed: random seed of the embedding. Default ``0``.
        optimize: relax the embedded geometry with a force field. Default ``True``.

    Returns:
        ``Data`` with ``z``, ``pos``, ``smiles`` (the input string) and ``num_nodes``.

    Raises:
        ImportError: naming the ``molecules`` extra if RDKit is missing.
        ValueError: naming ``smiles`` if RDKit cannot parse it, it has no atoms, no 3D
            embedding is found, or no force field covers it.

    Example:
        >>> data = from_smiles("CC")
        >>> data.z.tolist()
        [6, 6, 1, 1, 1, 1, 1, 1]
    """
    Chem = import_optional("rdkit.Chem", "converting SMILES")
    AllChem = import_optional("rdkit.Chem.AllChem", "embedding SMILES in 3D")
    if not isinstance(smiles, str):
        raise ValueError(f"expected a SMILES string, got {smiles!r}")
    if isinstance(seed, bool):
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    try:
        seed = operator.index(seed)
    except TypeError:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}") from None
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ValueError(f"could not parse SMILES {smiles!r}; expected a valid SMILES string")
    if mol.GetNumAtoms() == 0:
        raise ValueError(f"SMILES {smiles!r} has no atoms; expected a molecule")
    mol = Chem.AddHs(mol)
    params = AllChem.ETKDGv3()
    params.randomSeed = seed
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
    data = from_rdkit(mol, name=f"SMILES {smiles!r}")
    data.smiles = smiles
    return data


def read_molecules(
    path: str | os.PathLike, *, seed: int = 0, allow_implicit_hydrogens: bool = False
) -> list[Data]:
    """Read every molecule in a file, chosen by extension (see :data:`MOLECULE_EXTENSIONS`).

    Args:
        path: the file.
        seed: embedding seed for SMILES files (see :func:`from_smiles`). Default ``0``.
        allow_implicit_hydrogens: accept sdf / mol molecules whose hydrogens are implicit
            (see :func:`from_rdkit`). Default ``False``.

    Returns:
        One ``Data`` per molecule, in file order.

    Raises:
        ImportError: naming the ``molecules`` extra if ASE or RDKit is missing.
        ValueError: naming the file if it does not exist, has an unknown extension, holds no
            molecule, or cannot be parsed, and naming the frame, record or line that fails.
    """
    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lower()
    if extension not in MOLECULE_EXTENSIONS:
        raise ValueError(
            f"cannot read {path!r}: unknown extension {extension!r}; expected one of "
            f"{', '.join(MOLECULE_EXTENSIONS)}"
        )
    if not os.path.isfile(path):
        raise ValueError(f"cannot read {path!r}: no such file")
    if extension in (".xyz", ".extxyz"):
        molecules = _read_xyz(path)
    elif extension == ".sdf":
        molecules = _read_sdf(path, allow_implicit_hydrogens)
    elif extension == ".mol":
        molecules = _read_mol(path, allow_implicit_hydrogens)
    else:
        molecules = _read_smiles_file(path, seed)
    if not molecules:
        raise ValueError(f"{path!r} holds no molecule")
    return molecules


def _read_xyz(path: str) -> list[Data]:
    ase_io = import_optional("ase.io", "reading xyz files")
    try:
        frames = ase_io.read(path, index=":", format="extxyz")
    except Exception as error:  # ASE raises ValueError, XYZError, IndexError, ...
        raise ValueError(
            f"cannot parse {path!r} as (ext)xyz: {error}; expected frames of an atom count "
            "line, a comment line and one 'symbol x y z' line per atom"
        ) from error
    return [
        from_ase(atoms, name=f"frame {i} of {path!r}") for i, atoms in enumerate(frames, start=1)
    ]


def _read_sdf(path: str, allow_implicit_hydrogens: bool) -> list[Data]:
    Chem = import_optional("rdkit.Chem", "reading sdf files")
    try:
        supplier = Chem.SDMolSupplier(path, removeHs=False)
        count = len(supplier)
    except (OSError, RuntimeError) as error:  # RDKit rejects empty or unreadable files
        raise ValueError(f"cannot parse {path!r} as sdf: {error}") from error
    molecules = []
    for record in range(1, count + 1):
        mol = supplier[record - 1]
        if mol is None:
            raise ValueError(
                f"cannot parse record {record} of {path!r}: RDKit rejected it (its reason is "
                "logged above); expected a valid MDL molfile record ending in $$$$"
            )
        molecules.append(
            from_rdkit(
                mol,
                allow_implicit_hydrogens=allow_implicit_hydrogens,
                name=f"record {record} of {path!r}",
            )
        )
    return molecules


def _read_mol(path: str, allow_implicit_hydrogens: bool) -> list[Data]:
    Chem = import_optional("rdkit.Chem", "reading mol files")
    mol = Chem.MolFromMolFile(path, removeHs=False)
    if mol is None:
        raise ValueError(
            f"cannot parse {path!r}: RDKit rejected it (its reason is logged above); expected "
            "an MDL molfile"
        )
    return [from_rdkit(mol, allow_implicit_hydrogens=allow_implicit_hydrogens, name=repr(path))]


def _read_smiles_file(path: str, seed: int) -> list[Data]:
    molecules = []
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            try:
                molecules.append(from_smiles(text.split()[0], seed=seed))
            except ValueError as error:
                raise ValueError(f"line {number} of {path!r}: {error}") from error
    return molecules


def _as_atomic_number(element: int | str) -> int:
    if isinstance(element, str):
        return atomic_number(element)
    element_symbol(element)  # raises ValueError unless an integer in [1, 118]
    return operator.index(element)


def check_elements(
    data: Data | Iterable[Data], allowed_z: Iterable[int | str], *, source: str | None = None
) -> None:
    """Check that molecules contain only allowed elements.

    Args:
        data: one ``Data`` (or a batch) with ``z``, or an iterable of them.
        allowed_z: the allowed elements, as atomic numbers or symbols, e.g.
            ``flt3d.datasets.QM9_Z``.
        source: the file they come from; the message then names it and the structure (its
            ``idx`` where the ``Data`` has one, as :func:`~flt3d.datasets.read_structures`
            sets, else its position).

    Raises:
        ValueError: naming the element symbol(s) outside the allowed set and the first
            molecule that has them.

    Example:
        >>> import torch
        >>> check_elements(Data(z=torch.tensor([6, 1, 1, 1, 1])), [1, 6, 7, 8, 9])
    """
    allowed = {_as_atomic_number(element) for element in allowed_z}
    allowed_text = ", ".join(SYMBOLS[z] for z in sorted(allowed)) or "(empty)"
    molecules = [data] if isinstance(data, Data) else data
    for number, molecule in enumerate(molecules):
        present = set(torch.as_tensor(molecule.z).unique().tolist())
        outside = sorted(present - allowed)
        if outside:
            symbols = ", ".join(
                element_symbol(z) if 1 <= z < len(SYMBOLS) else f"Z={z}" for z in outside
            )
            smiles = getattr(molecule, "smiles", None)
            label = f"molecule {number}" + (f" ({smiles!r})" if isinstance(smiles, str) else "")
            if source is not None:
                index = int(molecule.idx) if "idx" in molecule else number
                label = f"{source!r}, structure {index}"
            raise ValueError(
                f"{label} contains element(s) {symbols} outside the allowed set {allowed_text}"
            )
