r"""QM9's CSV files parsed into PyG ``Data``: one molecule per row, every row checked.

:func:`read_qm9_frame` reads qm9pack's (or the sample's) files into a DataFrame of
:data:`QM9_COLUMNS`; :func:`read_qm9_csv` turns it into ``Data`` objects with all rows parsed at
once, naming the file and the QM9 ``Index`` of any malformed row.
"""

from __future__ import annotations

import os
import os.path as osp
import re
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch_geometric.data import Data

from flt3d.atomistic.elements import atomic_number
from flt3d.nn.checks import check_int

from .._optional import import_optional
from ..molecules import MAX_COORDINATE, _coincident_atoms, _far_atoms
from .targets import _TARGET_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["QM9_COLUMNS", "read_qm9_csv", "read_qm9_frame"]

QM9_COLUMNS: tuple[str, ...] = (
    "Index",
    "SMILES",
    "Elements",
    "XYZ_Ang",
    *(column for column, _ in _TARGET_COLUMNS),
)
"""Columns of qm9pack's CSV files that :func:`read_qm9_csv` needs (targets in original units)."""


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
        nrows = check_int(nrows, "nrows", minimum=0, index=True)
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
