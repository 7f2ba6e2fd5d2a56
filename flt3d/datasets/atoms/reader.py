"""Labelled structures read from a file that ASE reads: :func:`read_structures`.

Parsing the file with ``ase.io.iread``, selecting the structures ``index`` asks for, and turning
each into a checked ``Data`` with ``z``, ``pos``, ``cell``, ``pbc``, energy, forces and ``y``.
"""

from __future__ import annotations

import os
import os.path as osp
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from flt3d.atomistic.elements import SYMBOLS

from .._messages import _one_line
from .._optional import import_optional
from ..molecules.files import _xyz_layout_error
from ..molecules.geometry import _check_geometry
from .keys import (
    _available,
    _describe,
    _key,
    _lookup,
    _property_names,
    _scalar,
    _selection,
)


def _finite_rows(values: Tensor, what: str, where: str) -> None:
    finite = torch.isfinite(values).reshape(values.shape[0], -1).all(dim=1)
    if not finite.all():
        bad = torch.nonzero(~finite).flatten().tolist()
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise ValueError(f"{where}: NaN or infinite {what} (atom(s) {bad[:5]}{more})")


def _structure_data(
    atoms: Any,
    position: int,
    where: str,
    energy_key: str | None,
    forces_key: str,
    properties: tuple[str, ...],
) -> Data:
    numbers = np.asarray(atoms.numbers, dtype=np.int64)
    n = len(numbers)
    if n == 0:
        raise ValueError(f"{where}: has no atoms; expected at least one")
    unphysical = (numbers < 1) | (numbers >= len(SYMBOLS))
    if unphysical.any():
        bad = sorted(set(numbers[unphysical].tolist()))
        raise ValueError(
            f"{where}: non-physical atomic number(s) {bad}; expected elements, Z in [1, 118]"
        )

    positions = np.asarray(atoms.positions, dtype=np.float64)
    _finite_rows(torch.from_numpy(positions), "coordinates", where)
    _check_geometry(positions, where)  # beyond MAX_COORDINATE, or two atoms at one position
    pos = torch.as_tensor(positions, dtype=torch.float32)
    cell = torch.as_tensor(np.asarray(atoms.cell.array, dtype=np.float64), dtype=torch.float32)
    if not torch.isfinite(cell).all():
        raise ValueError(f"{where}: NaN or infinite cell {cell.tolist()}")
    pbc = torch.as_tensor(np.asarray(atoms.pbc, dtype=bool)).reshape(1, 3)

    data = Data(
        z=torch.from_numpy(numbers),
        pos=pos,
        cell=cell.reshape(1, 3, 3),
        pbc=pbc,
        natoms=torch.tensor([n], dtype=torch.long),
        idx=torch.tensor([position], dtype=torch.long),
        num_nodes=n,
    )
    if energy_key is not None:
        value, found = _lookup(atoms, energy_key)
        if not found:
            raise ValueError(
                f"{where}: no energy {energy_key!r} ({_available(atoms)}); pass energy_key= "
                "to name the key that holds it"
            )
        energy = _scalar(value, f"energy {energy_key!r}", where)
        data.energy = torch.tensor([[energy]], dtype=torch.float64)

    value, found = _lookup(atoms, forces_key, arrays=True)
    if found:
        forces = np.asarray(value)
        if forces.dtype.kind not in "iuf" or forces.shape != (n, 3):
            raise ValueError(
                f"{where}: forces {forces_key!r} must be real numbers of shape [{n}, 3], got "
                f"{_describe(forces)}"
            )
        data.forces = torch.as_tensor(forces.astype(np.float64), dtype=torch.float32)
        _finite_rows(data.forces, f"forces {forces_key!r}", where)

    if properties:
        row = []
        for name in properties:
            value, found = _lookup(atoms, name)
            if not found:
                raise ValueError(f"{where}: no property {name!r} ({_available(atoms)})")
            row.append(_scalar(value, f"property {name!r}", where))
        data.y = torch.tensor([row], dtype=torch.float32)
        if not torch.isfinite(data.y).all():
            raise ValueError(f"{where}: properties {list(properties)} overflow float32: {row}")
    return data


def _file_format(path: str, format: str | None) -> str | None:
    if format is not None:
        return format
    formats = import_optional("ase.io.formats", "reading atomistic structures")
    try:
        return formats.filetype(path)
    except Exception:  # unknown or unreadable: ase.io.iread reports it
        return None


def _read_atoms(path: str, index: int | slice | str, format: str | None) -> list[tuple[int, Any]]:
    ase_io = import_optional("ase.io", "reading atomistic structures")
    query = isinstance(index, str)
    file_format = _file_format(path, format)
    if query and file_format != "db":
        raise ValueError(
            f"{path!r}: index {index!r} is not an ASE index string (such as ':', '-1', '::10'); "
            "queries such as 'natoms<20' select structures of ASE databases (.db) only"
        )
    layout = _xyz_layout_error(path) if file_format == "extxyz" else None
    if layout is not None:
        raise ValueError(f"{path!r}, structure {layout[0]}: cannot parse ({layout[1]})")
    frames = []
    try:
        for atoms in ase_io.iread(path, index=index if query else ":", format=format):
            frames.append(atoms)
    except Exception as error:  # ASE raises XYZError, ValueError, KeyError, StopIteration, ...
        raise ValueError(
            f"{path!r}, structure {len(frames)}: cannot parse ({_one_line(error)})"
        ) from None
    if not frames:
        if query:
            raise ValueError(f"{path!r}: the query index={index!r} selects no structure")
        raise ValueError(f"{path!r} holds no structure")
    if query:
        return list(enumerate(frames))
    positions = range(len(frames))
    if isinstance(index, int):
        if not -len(frames) <= index < len(frames):
            raise ValueError(
                f"{path!r}: index {index} is out of range for its {len(frames)} structures"
            )
        return [(positions[index], frames[index])]
    chosen = positions[index]
    if not chosen:
        raise ValueError(f"{path!r}: index {index!r} selects none of its {len(frames)} structures")
    return [(position, frames[position]) for position in chosen]


def read_structures(
    path: str | os.PathLike,
    *,
    energy_key: str | None = "energy",
    forces_key: str = "forces",
    properties: Sequence[str] | None = None,
    index: int | slice | str = ":",
    format: str | None = None,
) -> list[Data]:
    r"""Read labelled structures from a file that ASE reads (extxyz, ``.db``, ``.traj``, ...).

    Every structure of the file is parsed with ``ase.io.iread`` (a file that fails to parse
    anywhere is rejected, even outside ``index``), then the selected ones are converted.

    Args:
        path: the file.
        energy_key: key of the total energy (eV) in ``atoms.info`` or the calculator's results.
            Default ``"energy"``; ``None``: structures without energies (to predict them).
        forces_key: key of the forces (eV/Å) in ``atoms.arrays`` or the calculator's results.
            Default ``"forces"``. Forces are optional, but all structures or none must have them.
        properties: names of further scalar properties in ``atoms.info`` (or the calculator's
            results), stored as the columns of ``y``. Default ``None``: no ``y``.
        index: which structures, as ``ase.io.read`` takes it: an int, a slice or a string
            (``":"``, ``"-1"``, ``"::10"``, or a query like ``"natoms<20"`` for a database).
            Default ``":"``, all. ``idx`` is the position in the file, except for a query,
            where it is the position among the selected rows.
        format: ASE format name, e.g. ``"extxyz"``. Default ``None``: guessed from the file.

    Returns:
        One ``Data`` per structure, in file order, with ``z``, ``pos``, ``energy``,
        ``cell``, ``pbc``, ``natoms``, ``idx``, ``num_nodes``, and ``forces`` and ``y``
        where present (see the module docstring for shapes and units).

    Raises:
        ImportError: naming the ``molecules`` extra if ASE is missing.
        ValueError: naming the file if it does not exist, is empty, cannot be parsed or
            ``index`` selects nothing, and naming the file and the structure for a missing
            energy or property, forces of the wrong shape or missing in only some structures,
            NaN or infinite coordinates, cell, energy or forces, coordinates beyond ±10⁴ Å, two
            atoms at the same position, no atoms, or an atomic number outside [1, 118].

    Example:
        >>> from flt3d.datasets import EMT_COPPER_SAMPLE_PATH
        >>> structures = read_structures(EMT_COPPER_SAMPLE_PATH, index=":2")
        >>> len(structures), structures[0].pos.shape, structures[0].energy.dtype
        (2, torch.Size([42, 3]), torch.float64)
    """
    path = os.fspath(path)
    energy_key = None if energy_key is None else _key(energy_key, "energy_key")
    forces_key = _key(forces_key, "forces_key")
    properties = _property_names(properties)
    if format is not None:
        _key(format, "format")
    if not osp.isfile(path):
        raise ValueError(f"cannot read {path!r}: no such file")
    if osp.getsize(path) == 0:
        raise ValueError(f"{path!r} is empty; expected at least one structure")
    selection = _selection(index)

    structures = []
    for position, atoms in _read_atoms(path, selection, format):
        where = f"{path!r}, structure {position}"
        structures.append(
            _structure_data(atoms, position, where, energy_key, forces_key, properties)
        )

    with_forces = [int(data.idx) for data in structures if "forces" in data]
    if with_forces and len(with_forces) < len(structures):
        missing = next(int(data.idx) for data in structures if "forces" not in data)
        raise ValueError(
            f"{path!r}, structure {missing}: no forces {forces_key!r}, but structure "
            f"{with_forces[0]} has them; expected forces for every structure or for none"
        )
    return structures
