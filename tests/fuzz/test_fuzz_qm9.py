"""Fuzzing the QM9 CSV parser (``read_qm9_csv``), plain and gzip-compressed.

A file either parses into sane molecules whose elements and coordinates are what an independent
reading of each row's lists finds, or raises a plain ``ValueError`` naming it.
"""

import ast
import gzip

import numpy as np
import pytest
import torch
from fuzz_strategies import QM9_SEEDS, TIERS, check_error, check_molecules, file_contents
from hypothesis import given
from hypothesis import strategies as st

from flt3d.atomistic.elements import atomic_number
from flt3d.datasets.qm9 import read_qm9_csv, read_qm9_frame

pytest.importorskip("pandas")

HEADER, FIRST, SECOND, THIRD = QM9_SEEDS[1].splitlines(keepends=True)


def _expected(frame) -> list[tuple[list[int], np.ndarray]]:
    """Each row's atomic numbers and coordinates, read with ``ast.literal_eval``."""
    rows = []
    for elements, xyz in zip(frame["Elements"], frame["XYZ_Ang"]):
        z = [atomic_number(symbol) for symbol in ast.literal_eval(elements)]
        pos = np.array(ast.literal_eval(xyz), dtype=np.float64)
        assert pos.shape == (len(z), 3), f"accepted malformed lists {elements!r}, {xyz!r}"
        rows.append((z, pos))
    return rows


def _write(folder, content: bytes, packing: str):
    if packing == "csv":
        path = folder / "input.csv"
        path.write_bytes(content)
    else:
        path = folder / "input.csv.gz"
        packed = gzip.compress(content, mtime=0)
        path.write_bytes(packed if packing == "gz" else packed[: len(packed) * 2 // 3])
    return path


@pytest.mark.parametrize("tier", TIERS)
def test_qm9_csv(tier, examples, tmp_path):
    @tier
    @given(file_contents(QM9_SEEDS), st.sampled_from(["csv", "csv", "gz", "truncated gz"]))
    def run(content, packing):
        examples()
        path = _write(tmp_path, content, packing)
        try:
            molecules = read_qm9_csv(path)
        except ValueError as error:
            check_error(error, str(path))
            return
        check_molecules(molecules, str(path))
        idx = [int(data.idx) for data in molecules]
        assert len(set(idx)) == len(idx)
        for data, (z, pos) in zip(molecules, _expected(read_qm9_frame(path)), strict=True):
            assert data.y.dtype == torch.float32 and data.y.shape == (1, 12)
            assert bool(torch.isfinite(data.y).all())
            assert data.z.tolist() == z
            assert torch.equal(data.pos, torch.from_numpy(pos.astype(np.float32)))

    run()


# ----------------------------------------------------------------------------- regressions


def _csv(tmp_path, text: str, name: str = "rows.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _raises(path, pattern: str):
    with pytest.raises(ValueError, match=pattern) as info:
        read_qm9_csv(path)
    assert type(info.value) is ValueError
    assert str(path) in str(info.value)


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes((HEADER + FIRST).encode() + b"\xe9\n")
    _raises(path, r"cannot parse QM9 CSV file .*latin1\.csv.*UnicodeDecodeError")


def test_rows_with_more_fields_than_the_header(tmp_path):
    extra = SECOND.rstrip("\n") + ",5,6\n"
    _raises(_csv(tmp_path, HEADER + FIRST + extra), r"ParserError: .* Expected 16 fields in line 3")
    shifted = FIRST.replace(",0.277,", ",0.277,5,")  # would shift the targets after the gap
    _raises(_csv(tmp_path, HEADER + shifted + SECOND), r"ParserWarning: Length of header")


def test_empty_file_and_header_only(tmp_path):
    _raises(_csv(tmp_path, "", "empty.csv"), r"cannot parse QM9 CSV file .*empty\.csv.*EmptyData")
    _raises(_csv(tmp_path, HEADER, "header.csv"), r"header\.csv: holds no QM9 rows")


def test_truncated_gzip(tmp_path):
    path = tmp_path / "cut.csv.gz"
    packed = gzip.compress((HEADER + FIRST + SECOND).encode())
    path.write_bytes(packed[: len(packed) // 2])
    _raises(path, r"cannot parse QM9 CSV file .*cut\.csv\.gz")


def test_missing_file(tmp_path):
    _raises(tmp_path / "missing.csv", r"missing\.csv.*no such file")


@pytest.mark.parametrize(("index", "shown"), [("", "nan"), ("2.5", "2.5"), ("x", "'x'")])
def test_index_that_is_not_an_integer(tmp_path, index, shown):
    row = index + SECOND[SECOND.index(",") :]
    _raises(
        _csv(tmp_path, HEADER + FIRST + row),
        rf"column Index must hold integers, which fails in data row\(s\) 2 \(got {shown}\)",
    )


def test_repeated_index(tmp_path):
    _raises(_csv(tmp_path, HEADER + FIRST + SECOND + FIRST), r"QM9 Index 25 occurs more than once")


def test_target_beyond_float32(tmp_path):
    row = FIRST.rstrip("\n").rsplit(",", 1)[0] + ",1e300\n"
    _raises(
        _csv(tmp_path, HEADER + row + SECOND), r"target beyond the float32 range in QM9 Index 25"
    )


def test_coordinate_beyond_the_limit(tmp_path):
    row = FIRST.replace("0.0174573422", "1e6", 1)
    _raises(_csv(tmp_path, HEADER + row), r"coordinate beyond ±10000 Å .* QM9 Index 25")


def test_two_atoms_at_one_position(tmp_path):
    first_atom = "[-0.01787959,1.4667689295,0.0101118041]"
    row = SECOND.replace("[0.0018664364,0.0107291322,0.0021110887]", first_atom, 1)
    _raises(_csv(tmp_path, HEADER + FIRST + row), r"two atoms at the same position .* Index 29$")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("'C',", "'C'\x00,"),  # numpy would drop the NUL of 'C\x00' and read C
        ("'C',", "'C\x00',"),
        ("'N'", "N"),
        (
            "[[0.0174573422,-1.1613421749,-0.0041534236]",
            "[[0.0174573422,-1.1613421749],[-0.0041534236",
        ),
        ("[[0.0174573422,", "[[\u0661,"),  # an Arabic-Indic one, which float() reads as 1
        ("[[0.0174573422,", "[[0.０174573422,"),  # a fullwidth zero
    ],
)
def test_malformed_lists(tmp_path, old, new):
    row = FIRST.replace(old, new, 1)
    _raises(_csv(tmp_path, HEADER + row), r"malformed Elements or XYZ_Ang list in QM9 Index 25;")
