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
"""

from __future__ import annotations

import operator
import os
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data

from flt3d.atomistic.elements import SYMBOLS, atomic_number, element_symbol

from ._optional import import_optional

__all__ = [
    "MAX_COORDINATE",
    "MOLECULE_EXTENSIONS",
    "check_elements",
    "from_ase",
    "from_rdkit",
    "from_smiles",
    "read_molecules",
]

MOLECULE_EXTENSIONS: tuple[str, ...] = (".xyz", ".extxyz", ".sdf", ".mol", ".smi", ".smiles")
"""File extensions that :func:`read_molecules` reads."""


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
    if isinstance(seed, bool):
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    try:
        seed = operator.index(seed)
    except TypeError:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}") from None
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
            molecule, or cannot be parsed (including non-UTF-8 text and, in xyz files, a blank
            line followed by more lines, which ASE would silently ignore), and naming the frame,
            record or line that fails, also for the geometries the module docstring lists.
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


def _xyz_layout_error(path: str) -> tuple[int, str] | None:
    """Where the frames of an (ext)xyz file break as ASE's reader scans them, ``(frame,
    reason)`` (0-based): an atom count beyond the end of the file, for which ASE reads lines
    past the end for ever, or lines after a blank line, which ASE ignores. ``None`` if neither
    (other errors are ASE's to report)."""
    with open(path, encoding="utf-8", errors="replace") as file:  # universal newlines, as ASE
        lines = file.read().split("\n")
    if lines and not lines[-1]:
        lines.pop()  # the newline that ends the last line
    k = frame = 0
    while k < len(lines) and lines[k].strip():
        try:
            count = int(lines[k])
        except ValueError:
            return None
        if count > len(lines) - k - 2:
            return frame, (
                f"line {k + 1} announces {count} atom(s), but only {len(lines) - k - 1} line(s) "
                "follow it, for a comment line and one line per atom"
            )
        k += 2 + max(count, 0)
        while k < len(lines) and lines[k].lstrip().startswith("VEC"):
            k += 1
        frame += 1
    rest = next((i + 1 for i in range(k + 1, len(lines)) if lines[i].strip()), None)
    if rest is None:
        return None
    return frame, (
        f"a blank line ends its {frame} frame(s), but line {rest} follows it; expected no "
        "blank lines between frames"
    )


def _read_xyz(path: str) -> list[Data]:
    ase_io = import_optional("ase.io", "reading xyz files")
    layout = _xyz_layout_error(path)
    if layout is not None:
        raise ValueError(f"cannot parse {path!r} as (ext)xyz: {layout[1]}")
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


def _universal_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")  # as open() reads text


def _read_smiles_file(path: str, seed: int) -> list[Data]:
    with open(path, "rb") as file:
        content = file.read()
    try:
        decoded = content.decode("utf-8")
    except UnicodeDecodeError as error:
        number = _universal_newlines(content[: error.start].decode("utf-8")).count("\n") + 1
        raise ValueError(
            f"cannot read line {number} of {path!r}: {error.reason} at byte {error.start}; "
            "expected UTF-8 text"
        ) from None
    molecules = []
    for number, line in enumerate(_universal_newlines(decoded).split("\n"), start=1):
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
