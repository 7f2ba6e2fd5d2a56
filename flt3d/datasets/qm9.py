r"""QM9: 130,831 small organic molecules (H, C, N, O, F) with DFT geometries and 12 targets.

The molecules, their B3LYP/6-31G(2df,p) equilibrium geometries and properties come from
Ramakrishnan et al., *Quantum chemistry structures and properties of 134 kilo molecules*,
Sci. Data 1, 140022 (2014), doi:10.1038/sdata.2014.22. They are read offline from the CSV files
that the PyPI package ``qm9pack`` ships (``pip install 'flt3d[molecules]'``): 133,885 molecules
minus the 3,054 that fail the authors' geometry consistency check, the same 130,831 molecules
that PyTorch Geometric's ``QM9`` holds. A uniform random sample of 4,000 of them ships with
flt3d itself (``QM9(root, sample=True)``), so tests and examples run without ``qm9pack``.

Targets follow PyTorch Geometric's order and units (the first 12 columns of its ``QM9.y``),
with :math:`1\,\mathrm{Ha} = 27.211386246\,\mathrm{eV}`:

====  =======  ==================================  ===========
 i    name     quantity                            unit
====  =======  ==================================  ===========
 0    mu       dipole moment :math:`\mu`           D
 1    alpha    isotropic polarizability            a0^3
 2    homo     HOMO energy                         eV
 3    lumo     LUMO energy                         eV
 4    gap      HOMO-LUMO gap                       eV
 5    r2       electronic spatial extent <R^2>     a0^2
 6    zpve     zero-point vibrational energy       eV
 7    U0       internal energy at 0 K              eV
 8    U        internal energy at 298.15 K         eV
 9    H        enthalpy at 298.15 K                eV
 10   G        free energy at 298.15 K             eV
 11   Cv       heat capacity at 298.15 K           cal/(mol K)
====  =======  ==================================  ===========

Targets are stored as float32, like PyTorch Geometric's; for total energies of about
:math:`-10^4` eV that is a resolution of about 1 meV.
"""

from __future__ import annotations

import importlib.util
import operator
import os
import os.path as osp
import re
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data, InMemoryDataset

from flt3d.atomistic.elements import atomic_number

from ._optional import MOLECULES_EXTRA, import_optional
from .molecules import MAX_COORDINATE, _coincident_atoms, _far_atoms

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "HARTREE_TO_EV",
    "QM9",
    "QM9_COLUMNS",
    "QM9_ELEMENTS",
    "QM9_SAMPLE_PATH",
    "QM9_SAMPLE_SIZE",
    "QM9_SIZE",
    "QM9_Z",
    "TARGETS",
    "UNITS",
    "head_for_target",
    "qm9pack_files",
    "read_qm9_csv",
    "read_qm9_frame",
    "standard_split",
    "target_index",
]

HARTREE_TO_EV = 27.211386246
"""eV per Hartree (CODATA 2018), the factor PyTorch Geometric uses."""

QM9_SIZE = 130_831
"""Number of molecules in the full set."""

QM9_SAMPLE_SIZE = 4_000
"""Number of molecules in the sample shipped with flt3d."""

QM9_SAMPLE_PATH = osp.join(osp.dirname(osp.abspath(__file__)), "data", "qm9_sample.csv.gz")
"""The shipped sample; see ``datasets/qm9_sample.md``."""

QM9_ELEMENTS: tuple[str, ...] = ("H", "C", "N", "O", "F")
"""Element vocabulary of QM9."""

QM9_Z: tuple[int, ...] = (1, 6, 7, 8, 9)
"""Atomic numbers of :data:`QM9_ELEMENTS`."""

TARGETS: tuple[str, ...] = (
    "mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "U0", "U", "H", "G", "Cv",
)  # fmt: skip
"""Target names, in the order of the columns of ``data.y``."""

UNITS: tuple[str, ...] = (
    "D", "a0^3", "eV", "eV", "eV", "a0^2", "eV", "eV", "eV", "eV", "eV", "cal/(mol K)",
)  # fmt: skip
"""Units of :data:`TARGETS`."""

# qm9pack column and factor to PyG's unit, for each target in TARGETS order.
_TARGET_COLUMNS: tuple[tuple[str, float], ...] = (
    ("Dipole_debye", 1.0),
    ("Polarizability_bohr3", 1.0),
    ("HOMO_au", HARTREE_TO_EV),
    ("LUMO_au", HARTREE_TO_EV),
    ("HOMO_LUMO_gap_au", HARTREE_TO_EV),
    ("R2_bohr2", 1.0),
    ("ZPVE_au", HARTREE_TO_EV),
    ("InternalEnergy_0K_au", HARTREE_TO_EV),
    ("InternalEnergy_298K_au", HARTREE_TO_EV),
    ("Enthalphy_298K_au", HARTREE_TO_EV),
    ("GibbsFreeEnergy_298K_au", HARTREE_TO_EV),
    ("Heatcapacity_Cv_cal_mol_K", 1.0),
)

QM9_COLUMNS: tuple[str, ...] = (
    "Index",
    "SMILES",
    "Elements",
    "XYZ_Ang",
    *(column for column, _ in _TARGET_COLUMNS),
)
"""Columns of qm9pack's CSV files that :func:`read_qm9_csv` needs (targets in original units)."""

_QM9PACK_PARTS = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")

_ALIASES: dict[str, int] = {
    **{name.lower(): i for i, name in enumerate(TARGETS)},
    "dipole": 0,
    "dipole_moment": 0,
    "polarizability": 1,
    "homo_lumo_gap": 4,
    "zero_point_energy": 6,
    "enthalpy": 9,
    "free_energy": 10,
    "heat_capacity": 11,
}


def target_index(target: str | int) -> int:
    """Column of ``data.y`` that holds a target.

    Args:
        target: a name from :data:`TARGETS` or an alias (case-insensitive: ``"u0"``,
            ``"HOMO"``, ``"dipole"``, ``"heat_capacity"``, ...), or a column index in
            ``[0, 12)``.

    Returns:
        The column index.

    Raises:
        ValueError: naming ``target`` if it is neither a known name nor an index in range.

    Example:
        >>> target_index("u0"), target_index("HOMO"), target_index(11)
        (7, 2, 11)
    """
    if isinstance(target, str):
        index = _ALIASES.get(target.strip().lower())
        if index is None:
            raise ValueError(
                f"unknown QM9 target {target!r}; expected one of {', '.join(TARGETS)} "
                f"(case-insensitive) or an index in [0, {len(TARGETS)})"
            )
        return index
    if isinstance(target, bool):
        raise ValueError(f"QM9 target must be a name or an integer index, got {target!r}")
    try:
        index = operator.index(target)
    except TypeError:
        raise ValueError(f"QM9 target must be a name or an integer index, got {target!r}") from None
    if not 0 <= index < len(TARGETS):
        raise ValueError(f"QM9 target index must be in [0, {len(TARGETS)}), got {target!r}")
    return index


_INTENSIVE = {"homo", "lumo", "gap"}


def head_for_target(target: str | int) -> str:
    """Name of the head (see :data:`flt3d.atomistic.HEADS`) that suits a QM9 target.

    ``mu`` → ``"dipole"``, ``r2`` → ``"spatial_extent"``, ``homo``/``lumo``/``gap`` →
    ``"intensive"``, every other target (energies, ``zpve``, ``alpha``, ``Cv``) →
    ``"extensive"``; ``"energy"`` (a total energy of one's own data) → ``"extensive"``.

    Args:
        target: QM9 target name (case-insensitive) or index in ``[0, 12)``, or ``"energy"``.

    Example:
        >>> head_for_target("mu"), head_for_target("GAP"), head_for_target(7)
        ('dipole', 'intensive', 'extensive')
    """
    if isinstance(target, str) and target.lower() == "energy":
        return "extensive"
    name = TARGETS[target_index(target)].lower()
    if name == "mu":
        return "dipole"
    if name == "r2":
        return "spatial_extent"
    return "intensive" if name in _INTENSIVE else "extensive"


def standard_split(
    num: int,
    *,
    seed: int = 0,
    train: int = 110_000,
    val: int = 10_000,
    reference: int | None = QM9_SIZE,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""The standard random train / validation / test split of QM9.

    A random permutation of ``range(num)`` from ``torch.randperm`` with a
    ``torch.Generator`` seeded by ``seed`` is cut into ``train``, ``val`` and the rest. On the
    full set that is 110,000 / 10,000 / 10,831 molecules, the split most QM9 papers use. The
    split is the same on every run for the same ``num`` and ``seed`` (the tests pin its first
    indices, so a PyTorch release that changed ``randperm`` would be noticed).

    Datasets smaller than ``reference`` (the 4,000-molecule sample, a filtered subset) are split
    in the same proportions: the sizes become ``train * num // reference`` and
    ``val * num // reference``, and the test set takes the rest (3,363 / 305 / 332 for the
    sample). Pass ``reference=None`` to use ``train`` and ``val`` as counts at any size.

    Args:
        num: number of molecules in the dataset.
        seed: seed of the permutation. Default ``0``.
        train: training molecules at the reference size. Default ``110_000``.
        val: validation molecules at the reference size. Default ``10_000``.
        reference: size at which ``train`` and ``val`` are counts; smaller datasets scale
            them down. Default :data:`QM9_SIZE`; ``None`` never scales.

    Returns:
        ``(train_idx, val_idx, test_idx)``: sorted, disjoint ``long`` tensors of positions in
        the dataset (not QM9 ``Index`` values) that together cover ``range(num)``.

    Raises:
        ValueError: if a size is negative, or the split leaves the training or test set empty.

    Example:
        >>> train_idx, val_idx, test_idx = standard_split(4000)
        >>> len(train_idx), len(val_idx), len(test_idx)
        (3363, 305, 332)
    """
    num = _non_negative_int(num, "num")
    seed = _non_negative_int(seed, "seed")
    train = _non_negative_int(train, "train")
    val = _non_negative_int(val, "val")
    if reference is not None:
        reference = _non_negative_int(reference, "reference")
        if reference == 0:
            raise ValueError("reference must be positive or None, got 0")
        if num < reference:
            train, val = train * num // reference, val * num // reference
    if train == 0 or train + val >= num:
        raise ValueError(
            f"cannot split {num} molecules into {train} training, {val} validation and "
            f"{num - train - val} test molecules: training and test sets must be non-empty"
        )
    generator = torch.Generator().manual_seed(seed)
    perm = torch.randperm(num, generator=generator)
    part = torch.full((num,), 2, dtype=torch.long)
    part[perm[:train]] = 0
    part[perm[train : train + val]] = 1
    return tuple(torch.nonzero(part == k).flatten() for k in range(3))


def _non_negative_int(value: int, name: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}") from None
    if value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value}")
    return value


def qm9pack_files() -> list[str]:
    """Paths of the three QM9 CSV files inside the installed ``qm9pack`` package.

    The package is located with ``importlib.util.find_spec`` and never imported (its modules
    import ``pkg_resources``, which recent environments lack).

    Returns:
        Paths of ``qm9_part1.csv``, ``qm9_part2.csv`` and ``qm9_part3.csv``.

    Raises:
        ImportError: naming the ``molecules`` extra if ``qm9pack`` is not installed.
        FileNotFoundError: if ``qm9pack`` is installed without its data files.
    """
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the full QM9 dataset is read from the package 'qm9pack', which is not installed; "
            f"install it with {MOLECULES_EXTRA} (or use QM9(root, sample=True))"
        )
    folder = osp.join(next(iter(spec.submodule_search_locations)), "data")
    paths = [osp.join(folder, name) for name in _QM9PACK_PARTS]
    missing = [path for path in paths if not osp.isfile(path)]
    if missing:
        raise FileNotFoundError(
            f"qm9pack is installed but lacks its data files {missing}; reinstall it with "
            "pip install --force-reinstall qm9pack"
        )
    return paths


def read_qm9_frame(
    paths: str | os.PathLike | Sequence[str | os.PathLike], *, nrows: int | None = None
) -> pd.DataFrame:
    """Read QM9 CSV files (qm9pack's or the shipped sample) into one ``pandas.DataFrame``.

    Only :data:`QM9_COLUMNS` (and ``N_atoms`` where present, for a consistency check) are
    kept; values stay in the files' units.

    Args:
        paths: one CSV file or several, read in order (``.csv.gz`` is decompressed).
        nrows: read only the first ``nrows`` rows of each file. Default: all rows.

    Returns:
        The concatenated rows with a fresh ``RangeIndex``.

    Raises:
        ImportError: naming the ``molecules`` extra if pandas is missing.
        ValueError: naming the file if it does not exist, cannot be parsed as CSV (not UTF-8
            text, a row with more fields than the header, a damaged ``.gz``) or lacks a
            required column.
    """
    pd = import_optional("pandas", "reading QM9 CSV files")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if nrows is not None:
        nrows = _non_negative_int(nrows, "nrows")
    wanted = {*QM9_COLUMNS, "N_atoms"}
    frames, sources = [], []
    for path in paths:
        path = os.fspath(path)
        if not osp.isfile(path):
            raise ValueError(f"cannot read QM9 CSV file {path!r}: no such file")
        try:  # all columns: with usecols, pandas would not reject rows of too many fields
            with warnings.catch_warnings():  # and the first row's, it drops with a warning
                warnings.simplefilter("error", pd.errors.ParserWarning)
                frame = pd.read_csv(path, nrows=nrows, index_col=False)
        except Exception as error:  # ParserError, UnicodeDecodeError, EOFError, zlib.error, ...
            reason = " ".join(str(error).split())
            raise ValueError(
                f"cannot parse QM9 CSV file {path!r}: {type(error).__name__}: {reason}"
            ) from None
        frame = frame[[column for column in frame.columns if column in wanted]]
        missing = [column for column in QM9_COLUMNS if column not in frame.columns]
        if missing:
            raise ValueError(f"QM9 CSV file {path!r} lacks the column(s) {', '.join(missing)}")
        frames.append(frame)
        sources.append(path)
    if not frames:
        raise ValueError("read_qm9_frame needs at least one CSV file, got none")
    frame = pd.concat(frames, ignore_index=True)
    frame.attrs["source"] = ", ".join(sources)
    return frame


def read_qm9_csv(
    paths: str | os.PathLike | Sequence[str | os.PathLike], *, nrows: int | None = None
) -> list[Data]:
    r"""Read QM9 CSV files into PyG ``Data`` objects, one per row.

    The list columns (``Elements`` like ``['C','H',...]``, ``XYZ_Ang`` like
    ``[[x,y,z],...]``) are parsed for all rows at once, so the full set takes seconds.

    Args:
        paths: one CSV file or several, read in order (``.csv.gz`` is decompressed).
        nrows: read only the first ``nrows`` rows of each file. Default: all rows.

    Returns:
        One ``Data`` per row with ``z`` (``long [n]``, atomic numbers), ``pos``
        (``float32 [n, 3]``, Å), ``y`` (``float32 [1, 12]``, :data:`TARGETS` in
        :data:`UNITS`), ``smiles`` (``str``), ``idx`` (``long [1]``, the QM9 ``Index``) and
        ``num_nodes``.

    Raises:
        ImportError: naming the ``molecules`` extra if pandas is missing.
        ValueError: naming the file if it cannot be parsed (see :func:`read_qm9_frame`), holds
            no rows, or its ``Index`` column holds a value that is not an integer or repeats one;
            naming the QM9 ``Index`` of a malformed row (unknown element, coordinate count not
            three per atom, non-numeric or non-finite value, a target beyond the float32
            range) or of an unusable geometry: a coordinate beyond
            :data:`~flt3d.datasets.molecules.MAX_COORDINATE` (±10⁴ Å, where float32 ``pos``
            would round bond lengths) or two atoms at the same position.
    """
    return _frame_to_data(read_qm9_frame(paths, nrows=nrows))


# The list columns as qm9pack writes them: quoted element symbols, and three values per atom
# (checked as numbers later), so that splitting them at commas cannot misread a damaged row.
_SYMBOL = r"('[A-Za-z]+'|\"[A-Za-z]+\")"
_ELEMENTS_LIST = re.compile(rf"\[{_SYMBOL}(,{_SYMBOL})*\]")
# printable ASCII but the list's brackets and commas: float() would also read other scripts'
# digits ('١' as 1), which no QM9 file holds
_VALUE = r"[\x21-\x2b\x2d-\x5a\x5c\x5e-\x7e]+"
_ATOM = rf"\[{_VALUE},{_VALUE},{_VALUE}\]"
_XYZ_LIST = re.compile(rf"\[{_ATOM}(,{_ATOM})*\]")


def _rows_of(rows: np.ndarray, num_rows: int) -> np.ndarray:
    mask = np.zeros(num_rows, dtype=bool)
    mask[rows] = True
    return mask


def _bad_rows(index: np.ndarray, mask: np.ndarray) -> str:
    bad = index[mask]
    shown = ", ".join(str(int(i)) for i in bad[:5])
    return shown + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")


def _index_column(frame: pd.DataFrame, source: str) -> np.ndarray:
    pd = import_optional("pandas", "reading QM9 CSV files")
    column = frame["Index"]
    if column.dtype.kind == "i":
        index = column.to_numpy(dtype=np.int64, copy=True)
    else:  # a NaN, a fraction, text or a number beyond int64 would not cast faithfully
        values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
        bad = ~(np.isfinite(values) & (values == np.round(values)) & (np.abs(values) < 2**53))
        if bad.any():
            rows = np.flatnonzero(bad)
            raise ValueError(
                f"{source}: column Index must hold integers, which fails in data row(s) "
                f"{', '.join(str(row + 1) for row in rows[:5])} "
                f"(got {column.tolist()[int(rows[0])]!r})"
            )
        index = values.astype(np.int64)
    unique, counts = np.unique(index, return_counts=True)
    if (counts > 1).any():
        repeated = ", ".join(str(int(i)) for i in unique[counts > 1][:5])
        raise ValueError(
            f"{source}: QM9 Index {repeated} occurs more than once; expected each molecule once "
            "(a repeated row?)"
        )
    return index


def _frame_to_data(frame: pd.DataFrame) -> list[Data]:
    source = frame.attrs.get("source", "QM9 CSV")
    if len(frame) == 0:
        raise ValueError(f"{source}: holds no QM9 rows; expected at least one molecule")
    index = _index_column(frame, source)

    elements = frame["Elements"].tolist()
    coordinates = frame["XYZ_Ang"].tolist()
    smiles = frame["SMILES"].tolist()
    not_text = np.array(
        [not (isinstance(e, str) and isinstance(c, str) and isinstance(s, str))
         for e, c, s in zip(elements, coordinates, smiles, strict=True)],
        dtype=bool,
    )  # fmt: skip
    if not_text.any():
        raise ValueError(
            f"{source}: empty or non-text Elements, XYZ_Ang or SMILES in QM9 Index "
            f"{_bad_rows(index, not_text)}"
        )

    malformed = np.array(
        [not (_ELEMENTS_LIST.fullmatch(e.replace(" ", "")) and _XYZ_LIST.fullmatch(c.replace(" ", "")))
         for e, c in zip(elements, coordinates)],
        dtype=bool,
    )  # fmt: skip
    if malformed.any():
        raise ValueError(
            f"{source}: malformed Elements or XYZ_Ang list in QM9 Index "
            f"{_bad_rows(index, malformed)}; expected ['C','H',...] and [[x,y,z],...]"
        )

    num_atoms = np.array([e.count(",") + 1 for e in elements], dtype=np.int64)
    num_coords = np.array([c.count(",") + 1 for c in coordinates], dtype=np.int64)
    wrong = num_coords != 3 * num_atoms
    if "N_atoms" in frame.columns:
        wrong |= frame["N_atoms"].to_numpy() != num_atoms
    if wrong.any():
        raise ValueError(
            f"{source}: XYZ_Ang must hold 3 coordinates for each atom in Elements "
            f"(and N_atoms atoms), which fails for QM9 Index {_bad_rows(index, wrong)}"
        )
    ptr = np.concatenate([[0], np.cumsum(num_atoms)])
    row_of_atom = np.repeat(np.arange(len(frame)), num_atoms)

    symbols = ",".join(elements).translate(str.maketrans("", "", "[]'\" ")).split(",")
    unique, inverse = np.unique(np.array(symbols), return_inverse=True)
    numbers = np.empty(len(unique), dtype=np.int64)
    for k, symbol in enumerate(unique.tolist()):
        try:
            numbers[k] = atomic_number(symbol)
        except ValueError:
            mask = _rows_of(row_of_atom[inverse.reshape(-1) == k], len(frame))
            raise ValueError(
                f"{source}: unknown element symbol {symbol!r} in QM9 Index {_bad_rows(index, mask)}"
            ) from None
    z = numbers[inverse.reshape(-1)]

    tokens = ",".join(coordinates).translate(str.maketrans("", "", "[] ")).split(",")
    try:
        xyz = np.array(tokens, dtype=np.float64)
    except ValueError:
        mask = np.zeros(len(frame), dtype=bool)
        for row, text in enumerate(coordinates):
            try:
                np.array(text.translate(str.maketrans("", "", "[] ")).split(","), dtype=np.float64)
            except ValueError:
                mask[row] = True
        raise ValueError(
            f"{source}: non-numeric coordinate in XYZ_Ang of QM9 Index {_bad_rows(index, mask)}"
        ) from None
    xyz = xyz.reshape(-1, 3)
    not_finite = ~np.isfinite(xyz).all(axis=1)
    if not_finite.any():
        raise ValueError(
            f"{source}: non-finite coordinate in XYZ_Ang of QM9 Index "
            f"{_bad_rows(index, _rows_of(row_of_atom[not_finite], len(frame)))}"
        )
    far = _far_atoms(xyz)
    if far.any():
        raise ValueError(
            f"{source}: coordinate beyond ±{MAX_COORDINATE:g} Å (where float32 positions round "
            "bond lengths) in XYZ_Ang of QM9 Index "
            f"{_bad_rows(index, _rows_of(row_of_atom[far], len(frame)))}"
        )
    repeated = _coincident_atoms(xyz, row_of_atom)
    if repeated.any():
        raise ValueError(
            f"{source}: two atoms at the same position in XYZ_Ang of QM9 Index "
            f"{_bad_rows(index, _rows_of(row_of_atom[repeated], len(frame)))}"
        )

    columns = [column for column, _ in _TARGET_COLUMNS]
    try:
        raw = frame[columns].to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{source}: the target columns {columns} must be numeric") from None
    not_finite = ~np.isfinite(raw).all(axis=1)
    if not_finite.any():
        raise ValueError(
            f"{source}: missing or non-finite target in QM9 Index {_bad_rows(index, not_finite)}"
        )
    factors = np.array([factor for _, factor in _TARGET_COLUMNS], dtype=np.float64)
    with np.errstate(over="ignore"):
        y = (raw * factors).astype(np.float32)
    overflow = ~np.isfinite(y).all(axis=1)
    if overflow.any():
        raise ValueError(
            f"{source}: target beyond the float32 range in QM9 Index {_bad_rows(index, overflow)}"
        )
    y = torch.from_numpy(y)
    z_all = torch.from_numpy(z)
    pos_all = torch.from_numpy(xyz.astype(np.float32))
    idx_all = torch.from_numpy(index)

    data_list = []
    for row in range(len(frame)):
        start, stop = int(ptr[row]), int(ptr[row + 1])
        data_list.append(
            Data(
                z=z_all[start:stop].clone(),
                pos=pos_all[start:stop].clone(),
                y=y[row : row + 1].clone(),
                smiles=smiles[row],
                idx=idx_all[row : row + 1].clone(),
                num_nodes=stop - start,
            )
        )
    return data_list


class QM9(InMemoryDataset):
    r"""QM9 as a PyTorch Geometric ``InMemoryDataset``, read offline.

    The full set (130,831 molecules) is read from the CSV files of the PyPI package
    ``qm9pack``; ``sample=True`` reads the 4,000-molecule sample shipped with flt3d instead
    and needs neither ``qm9pack`` nor a network. Processing happens once and is cached in
    ``root/processed`` (``qm9.pt`` or ``qm9_sample.pt``); later constructions load the cache,
    which no longer needs ``qm9pack``.

    Each molecule is a ``Data`` with ``z`` (``long [n]``), ``pos`` (``float32 [n, 3]``, Å),
    ``y`` (``float32 [1, 12]``, see :data:`TARGETS` and :data:`UNITS`), ``smiles``, ``idx``
    (``long [1]``, the QM9 ``Index``, 1-based as in the original files) and ``num_nodes``.
    Molecules are in ``Index`` order.

    Args:
        root: folder for the processed cache.
        sample: read the shipped sample instead of the full set. Default ``False``.
        transform: applied to each ``Data`` on access. Default ``None``.
        pre_transform: applied to each ``Data`` once, before caching. Default ``None``.
        pre_filter: keeps the ``Data`` for which it returns ``True``, before caching.
            Default ``None``.
        force_reload: process again even if a cache exists. Default ``False``.
        log: print progress while processing. Default ``True``.

    Raises:
        ImportError: naming the ``molecules`` extra if the full set is requested and
            ``qm9pack`` or pandas is missing.

    Example:
        >>> import tempfile
        >>> dataset = QM9(tempfile.mkdtemp(), sample=True, log=False)
        >>> len(dataset), dataset[0].y.shape
        (4000, torch.Size([1, 12]))
    """

    def __init__(
        self,
        root: str,
        *,
        sample: bool = False,
        transform: Callable[[Data], Data] | None = None,
        pre_transform: Callable[[Data], Data] | None = None,
        pre_filter: Callable[[Data], bool] | None = None,
        force_reload: bool = False,
        log: bool = True,
    ) -> None:
        if not isinstance(sample, bool):
            raise ValueError(f"sample must be True or False, got {sample!r}")
        self.sample = sample
        super().__init__(
            root, transform, pre_transform, pre_filter, log=log, force_reload=force_reload
        )
        self.load(self.processed_paths[0])

    @property
    def raw_dir(self) -> str:
        if self.sample:
            return osp.dirname(QM9_SAMPLE_PATH)
        return osp.dirname(qm9pack_files()[0])

    @property
    def raw_file_names(self) -> list[str]:
        if self.sample:
            return [osp.basename(QM9_SAMPLE_PATH)]
        return list(_QM9PACK_PARTS)

    @property
    def processed_file_names(self) -> str:
        return "qm9_sample.pt" if self.sample else "qm9.pt"

    def process(self) -> None:
        data_list = read_qm9_csv(self.raw_paths)
        expected = QM9_SAMPLE_SIZE if self.sample else QM9_SIZE
        if len(data_list) != expected:
            raise ValueError(
                f"expected {expected} molecules in {self.raw_paths}, found {len(data_list)}; "
                "the files are incomplete or of another version"
            )
        if self.pre_filter is not None:
            data_list = [data for data in data_list if self.pre_filter(data)]
        if self.pre_transform is not None:
            data_list = [self.pre_transform(data) for data in data_list]
        self.save(data_list, self.processed_paths[0])

    def standard_split(self, *, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
        """The standard split of this dataset; see :func:`standard_split`.

        Args:
            seed: seed of the permutation. Default ``0``.

        Returns:
            ``(train_idx, val_idx, test_idx)``, positions in this dataset.
        """
        return standard_split(len(self), seed=seed)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({len(self)}, sample={self.sample})"
