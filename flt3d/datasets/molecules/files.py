"""Molecule files read by extension: :func:`read_molecules` and its xyz, sdf, mol, SMILES readers.

Also the scan of an (ext)xyz file's frame layout that catches what ASE's reader would loop on or
silently ignore.
"""

from __future__ import annotations

import os

from torch_geometric.data import Data

from .._optional import import_optional
from .convert import from_ase, from_rdkit, from_smiles

MOLECULE_EXTENSIONS: tuple[str, ...] = (".xyz", ".extxyz", ".sdf", ".mol", ".smi", ".smiles")
"""File extensions that :func:`read_molecules` reads."""


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
