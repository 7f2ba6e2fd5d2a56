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
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import os
import os.path as osp
import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data, InMemoryDataset

from flt3d.atomistic.elements import SYMBOLS, element_symbol

from ._optional import import_optional
from .cache import default_data_root
from .molecules import _check_geometry, _xyz_layout_error

__all__ = [
    "EMT_COPPER_SAMPLE_PATH",
    "ION_WATER_SAMPLE_PATH",
    "SALT_CLUSTERS_SAMPLE_PATH",
    "AtomRef",
    "AtomsDataset",
    "read_structures",
]

EMT_COPPER_SAMPLE_PATH = osp.join(
    osp.dirname(osp.abspath(__file__)), "data", "emt_copper_sample.extxyz"
)
"""Copper clusters from Langevin MD with ASE's EMT potential, shipped with flt3d; see
``datasets/emt_copper.md``."""

ION_WATER_SAMPLE_PATH = osp.join(
    osp.dirname(osp.abspath(__file__)), "data", "ion_water_sample.extxyz"
)
"""Water droplets with Na+ and Cl- ions from Langevin MD, labelled with OpenMM (Amber14, TIP3P,
exact Coulomb), shipped with flt3d; see ``datasets/ion_water.md``."""

SALT_CLUSTERS_SAMPLE_PATH = osp.join(
    osp.dirname(osp.abspath(__file__)), "data", "salt_clusters_sample.extxyz"
)
"""Isolated, net-charged Na+/Cl- clusters (no water, unscreened Coulomb) from Langevin MD,
labelled with OpenMM (Joung-Cheatham ions, exact Coulomb), shipped with flt3d; see
``datasets/salt_clusters.md``."""

# Bump when the layout of the processed Data changes, so that old caches are not loaded.
_CACHE_VERSION = 1


def _key(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _property_names(properties: Sequence[str] | None) -> tuple[str, ...]:
    if properties is None:
        return ()
    if isinstance(properties, str):
        raise ValueError(
            f"properties must be a sequence of names, got the string {properties!r}; "
            f"write properties=[{properties!r}]"
        )
    names = tuple(properties)
    for name in names:
        _key(name, "each entry of properties")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"properties lists {', '.join(repeated)} more than once")
    return names


def _selection(index: int | slice | str) -> int | slice | str:
    if isinstance(index, bool):
        raise ValueError(f"index must be an int, a slice or an ASE index string, got {index!r}")
    if isinstance(index, slice):
        return _checked_slice(index, index)
    if isinstance(index, str):
        formats = import_optional("ase.io.formats", "reading atomistic structures")
        try:
            selection = formats.string2index(index)
        except (TypeError, ValueError):  # "1:2:3:4" is a TypeError
            return index  # an ASE database query such as "natoms<20"
        return _checked_slice(selection, index) if isinstance(selection, slice) else selection
    try:
        return operator.index(index)
    except TypeError:
        raise ValueError(
            f"index must be an int, a slice or an ASE index string, got {index!r}"
        ) from None


def _checked_slice(selection: slice, index: slice | str) -> slice:
    parts = (selection.start, selection.stop, selection.step)
    if any(part is not None and (isinstance(part, bool) or not hasattr(part, "__index__"))
           for part in parts):  # fmt: skip
        raise ValueError(f"index {index!r} must be a slice of integers")
    if selection.step == 0:
        raise ValueError(f"index {index!r} has step 0; expected a non-zero step")
    return selection


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {tuple(value.shape)} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _lookup(atoms: Any, key: str, arrays: bool = False) -> tuple[Any, bool]:
    store = atoms.arrays if arrays else atoms.info
    if key in store:
        return store[key], True
    results = getattr(atoms.calc, "results", None) or {}
    if key in results:
        return results[key], True
    return None, False


def _available(atoms: Any, arrays: bool = False) -> str:
    store = atoms.arrays if arrays else atoms.info
    name = "atoms.arrays" if arrays else "atoms.info"
    keys = sorted(str(key) for key in store)
    if arrays:
        keys = [key for key in keys if key not in ("numbers", "positions")]
    if atoms.calc is None:
        calc = "there is no calculator"
    else:
        results = sorted(str(key) for key in (getattr(atoms.calc, "results", None) or {}))
        calc = f"the calculator's results have {', '.join(results) or 'no keys'}"
    return f"{name} has {', '.join(keys) or 'no keys'}, {calc}"


def _scalar(value: Any, what: str, where: str) -> float:
    array = np.asarray(value)
    if array.dtype.kind not in "iuf" or array.size != 1:
        raise ValueError(f"{where}: {what} must be one real number, got {_describe(value)}")
    number = float(array.reshape(()))
    if not math.isfinite(number):
        raise ValueError(f"{where}: {what} is {number}; expected a finite number")
    return number


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


class AtomRef(NamedTuple):
    r"""Per-element reference energies from :meth:`AtomsDataset.fit_atomref`.

    Attributes:
        energies: ``{Z: e_Z}`` in eV, the least-squares solution of
            :math:`E_i \approx \sum_Z n_{iZ} e_Z`.
        mean: mean of the per-atom residual :math:`(E_i - \sum_Z n_{iZ} e_Z) / N_i`, eV/atom.
        std: its standard deviation (population, ``ddof=0``), eV/atom.
    """

    energies: dict[int, float]
    mean: float
    std: float


class AtomsDataset(InMemoryDataset):
    r"""Labelled structures from one file, read with :func:`read_structures` and cached.

    The processed structures are saved in ``root/processed`` under a name made of the file's
    name and a hash of its absolute path, size and modification time and of the keys, so
    editing the file or asking for other keys processes it again, while the same request
    loads the cache. Old caches of an edited file stay in the folder until deleted.

    Args:
        path: the structure file (extxyz, ``.db``, ``.traj``, ...), e.g.
            :data:`EMT_COPPER_SAMPLE_PATH`.
        root: folder for the cache. Default: ``$FLT3D_DATA/atoms``, or
            ``~/.cache/flt3d/atoms`` without ``FLT3D_DATA``.
        energy_key: see :func:`read_structures`. Default ``"energy"``.
        forces_key: see :func:`read_structures`. Default ``"forces"``.
        properties: see :func:`read_structures`. Default ``None``.
        index: see :func:`read_structures`. Default ``":"``.
        format: see :func:`read_structures`. Default ``None``.
        transform: applied to each ``Data`` on access. Default ``None``.
        log: print progress while processing. Default ``False``.
        force_reload: process again even if a cache exists. Default ``False``.

    Raises:
        ImportError: naming the ``molecules`` extra if ASE is needed and missing.
        ValueError: as :func:`read_structures`, when the file is processed.

    Example:
        >>> import tempfile
        >>> dataset = AtomsDataset(EMT_COPPER_SAMPLE_PATH, tempfile.mkdtemp())
        >>> dataset.has_forces, dataset.elements
        (True, (29,))
    """

    def __init__(
        self,
        path: str | os.PathLike,
        root: str | os.PathLike | None = None,
        *,
        energy_key: str = "energy",
        forces_key: str = "forces",
        properties: Sequence[str] | None = None,
        index: int | slice | str = ":",
        format: str | None = None,
        transform: Callable[[Data], Data] | None = None,
        log: bool = False,
        force_reload: bool = False,
    ) -> None:
        self.path = osp.abspath(os.fspath(path))
        self.energy_key = _key(energy_key, "energy_key")
        self.forces_key = _key(forces_key, "forces_key")
        self.properties = _property_names(properties)
        self.index = index
        self.format = None if format is None else _key(format, "format")
        if not osp.isfile(self.path):
            raise ValueError(f"cannot read {self.path!r}: no such file")
        stat = os.stat(self.path)
        key = [
            _CACHE_VERSION, self.path, stat.st_size, stat.st_mtime_ns, self.energy_key,
            self.forces_key, list(self.properties), repr(index), self.format,
        ]  # fmt: skip
        self._digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]
        root = osp.join(default_data_root(), "atoms") if root is None else os.fspath(root)
        super().__init__(osp.expanduser(root), transform, log=log, force_reload=force_reload)
        self.load(self.processed_paths[0])

    @property
    def raw_dir(self) -> str:
        return osp.dirname(self.path)

    @property
    def raw_file_names(self) -> list[str]:
        return [osp.basename(self.path)]

    @property
    def processed_file_names(self) -> str:
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", osp.basename(self.path))
        return f"{stem}-{self._digest}.pt"

    def process(self) -> None:
        data_list = read_structures(
            self.path,
            energy_key=self.energy_key,
            forces_key=self.forces_key,
            properties=self.properties,
            index=self.index,
            format=self.format,
        )
        self.save(data_list, self.processed_paths[0])

    @property
    def has_forces(self) -> bool:
        """Whether the structures have ``forces`` (then all of them do)."""
        return "forces" in self._data

    @property
    def elements(self) -> tuple[int, ...]:
        """Sorted atomic numbers that occur in this dataset (or subset)."""
        numbers, counts = self._composition()
        present = counts[self._rows()].sum(dim=0) > 0
        return tuple(numbers[present].tolist())

    def _rows(self) -> Tensor:
        # Rows of the collated store behind the positions 0..len-1 of this (sub)dataset.
        return torch.as_tensor(list(self.indices()), dtype=torch.long)

    def _composition(self) -> tuple[Tensor, Tensor]:
        # Atomic numbers present in the store, and atom counts [structures, elements].
        z, natoms = self._data.z, self._data.natoms
        numbers = torch.unique(z)
        structure = torch.repeat_interleave(torch.arange(natoms.numel()), natoms)
        counts = torch.zeros(natoms.numel(), numbers.numel(), dtype=torch.float64)
        ones = torch.ones(z.numel(), dtype=torch.float64)
        counts.index_put_((structure, torch.searchsorted(numbers, z)), ones, accumulate=True)
        return numbers, counts

    def _positions(self, indices: Any) -> Tensor:
        try:
            positions = torch.as_tensor(indices)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(
                f"indices must be a 1-D sequence of integer positions, got {_describe(indices)}"
            ) from None
        if positions.numel() == 0:
            raise ValueError("indices is empty; expected at least one structure")
        integer = not (positions.dtype.is_floating_point or positions.dtype.is_complex)
        if positions.dim() != 1 or positions.dtype == torch.bool or not integer:
            raise ValueError(
                "indices must be a 1-D sequence of integer positions, got a tensor of shape "
                f"{tuple(positions.shape)} and dtype {positions.dtype}"
            )
        positions = positions.long()
        outside = (positions < 0) | (positions >= len(self))
        if outside.any():
            raise ValueError(
                f"indices must be positions in [0, {len(self)}), got "
                f"{positions[outside][:5].tolist()}"
            )
        return positions

    def split(
        self, *, val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0
    ) -> tuple[Tensor, Tensor, Tensor]:
        r"""A seeded random split into training, validation and test structures.

        A ``torch.randperm`` of the positions, from a ``torch.Generator`` seeded by ``seed``,
        is cut into :math:`\lfloor f_\mathrm{val} n \rfloor` validation and
        :math:`\lfloor f_\mathrm{test} n \rfloor` test structures; the rest (at least one)
        train. Snapshots of one MD run are correlated, so a random split puts near copies on
        both sides; split by ``info`` metadata such as a run id where that matters.

        Args:
            val_fraction: fraction for validation, in ``[0, 1)``. Default ``0.1``.
            test_fraction: fraction for testing, in ``[0, 1)``. Default ``0.1``.
            seed: seed of the permutation. Default ``0``.

        Returns:
            ``(train_idx, val_idx, test_idx)``: sorted, disjoint ``long`` tensors of positions
            in this dataset that together cover ``range(len(self))``.

        Raises:
            ValueError: if a fraction is outside ``[0, 1)``, they sum to 1 or more, or ``seed``
                is not a non-negative integer.
        """
        for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
        if val_fraction + test_fraction >= 1:
            raise ValueError(
                f"val_fraction + test_fraction must be below 1 to leave training structures, "
                f"got {val_fraction} + {test_fraction}"
            )
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        n = len(self)
        n_val = math.floor(val_fraction * n + 1e-9)
        n_test = math.floor(test_fraction * n + 1e-9)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        part = torch.zeros(n, dtype=torch.long)
        part[perm[:n_val]] = 1
        part[perm[n_val : n_val + n_test]] = 2
        return tuple(torch.nonzero(part == k).flatten() for k in range(3))

    def fit_atomref(self, indices: Tensor | Sequence[int]) -> AtomRef:
        r"""Per-element reference energies fitted by least squares on the given structures.

        .. math::
            \min_{e} \sum_{i} \Big(E_i - \sum_Z n_{iZ} e_Z\Big)^2

        over the structures ``indices`` (the training part, so that validation and test
        energies do not leak into the baseline), with :math:`n_{iZ}` the number of atoms of
        element :math:`Z` in structure :math:`i`, solved with ``numpy.linalg.lstsq`` in
        float64. Where compositions do not fix every :math:`e_Z` (two elements always in the
        same ratio) it returns the minimum-norm solution.

        Args:
            indices: positions in this dataset, e.g. ``train_idx`` from :meth:`split`.

        Returns:
            :class:`AtomRef`: ``(energies, mean, std)`` with ``energies = {Z: eV}`` and the
            mean and standard deviation of the per-atom residual energy, in eV/atom.

        Raises:
            ValueError: if ``indices`` is empty, not integer or out of range, or if an element
                of this dataset occurs in none of the given structures (its reference could not
                be fitted), naming those elements.
        """
        positions = self._positions(indices)
        rows = self._rows()[positions]
        numbers, counts = self._composition()
        present = counts[self._rows()].sum(dim=0) > 0
        fitted = counts[rows].sum(dim=0) > 0
        unseen = numbers[present & ~fitted].tolist()
        if unseen:
            symbols = ", ".join(f"{element_symbol(z)} (Z={z})" for z in unseen)
            raise ValueError(
                f"element(s) {symbols} occur in this dataset but in none of the "
                f"{len(positions)} structures given to fit_atomref, so their reference "
                "energies cannot be fitted; use a training part that contains every element"
            )
        a = counts[rows][:, fitted].numpy()
        b = self._data.energy.reshape(-1)[rows].numpy()
        solution, *_ = np.linalg.lstsq(a, b, rcond=None)
        residual = (b - a @ solution) / a.sum(axis=1)
        energies = {int(z): float(e) for z, e in zip(numbers[fitted].tolist(), solution)}
        return AtomRef(energies, float(residual.mean()), float(residual.std()))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({len(self)}, {osp.basename(self.path)!r})"
