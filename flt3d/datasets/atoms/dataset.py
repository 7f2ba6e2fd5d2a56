"""The cached dataset of one structure file: :class:`AtomsDataset`, its split and references.

An ``InMemoryDataset`` of :func:`~flt3d.datasets.read_structures`, cached under a hash of the
file and the keys, with a seeded random split and the per-element reference energies
(:class:`AtomRef`) fitted by least squares.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import os.path as osp
import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data, InMemoryDataset

from flt3d.atomistic.elements import element_symbol

from ..cache import default_data_root
from .keys import _describe, _key, _property_names
from .reader import read_structures

# Bump when the layout of the processed Data changes, so that old caches are not loaded.
_CACHE_VERSION = 1


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
        >>> from flt3d.datasets import EMT_COPPER_SAMPLE_PATH
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
