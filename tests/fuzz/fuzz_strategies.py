"""Inputs for fuzzing the readers and the CLI: valid files, mutations of them, random bytes.

A mutation is a short list of operations applied to a valid file: delete, duplicate or swap
lines, truncate, replace a number (NaN, inf, 1e6, garbage), a word (element symbols, keys) or an
atom count, insert text or non-UTF-8 bytes, switch to CRLF. Two tiers of settings: ``FAST``
(derandomized, a few dozen examples, run by default) and ``SLOW`` (thousands, ``-m slow``).
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Sequence

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from flt3d.datasets.atoms import EMT_COPPER_SAMPLE_PATH
from flt3d.datasets.molecules import MAX_COORDINATE
from flt3d.datasets.qm9 import QM9_SAMPLE_PATH

_COMMON = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
FAST = settings(max_examples=60, derandomize=True, **_COMMON)
SLOW = settings(max_examples=2000, **_COMMON)
SLOW_CLI = settings(max_examples=500, **_COMMON)

TIERS = [pytest.param(FAST, id="fast"), pytest.param(SLOW, id="slow", marks=pytest.mark.slow)]
CLI_TIERS = [
    pytest.param(FAST, id="fast"),
    pytest.param(SLOW_CLI, id="slow", marks=pytest.mark.slow),
]

WATER_XYZ = "3\nwater\nO 0.0 0.0 0.117\nH 0.0 0.757 -0.467\nH 0.0 -0.757 -0.467\n"
METHANE_XYZ = (
    "5\nmethane\nC 0 0 0\nH 0.629 0.629 0.629\nH -0.629 -0.629 0.629\n"
    "H -0.629 0.629 -0.629\nH 0.629 -0.629 -0.629\n"
)
WATER_EXTXYZ = (
    "3\n"
    'Lattice="10.0 0.0 0.0 0.0 10.0 0.0 0.0 0.0 10.0" Properties=species:S:1:pos:R:3:forces:R:3 '
    'charge=0 energy=-14.2 pbc="T T F"\n'
    "O 0.00000000 0.00000000 0.11700000 0.00000000 0.00000000 0.10000000\n"
    "H 0.00000000 0.75700000 -0.46700000 0.00000000 0.20000000 -0.05000000\n"
    "H 0.00000000 -0.75700000 -0.46700000 0.00000000 -0.20000000 -0.05000000\n"
)
CLUSTER_EXTXYZ = (
    "2\n"
    'Properties=species:S:1:pos:R:3:forces:R:3 energy=1.5 pbc="F F F"\n'
    "Cu 0.0 0.0 0.0 0.1 0.0 0.0\n"
    "Cu 2.5 0.0 0.0 -0.1 0.0 0.0\n"
)


def _first_frame(path: str) -> str:
    with open(path, encoding="utf-8") as file:
        count = next(file)
        return count + "".join(next(file) for _ in range(int(count) + 1))


COPPER_EXTXYZ = _first_frame(EMT_COPPER_SAMPLE_PATH)
"""The first cluster of the shipped EMT copper sample (42 atoms, energy and forces)."""

XYZ_SEEDS = (WATER_XYZ, WATER_XYZ + METHANE_XYZ, WATER_EXTXYZ, WATER_EXTXYZ + CLUSTER_EXTXYZ)
STRUCTURE_SEEDS = (
    WATER_EXTXYZ, CLUSTER_EXTXYZ, WATER_EXTXYZ + CLUSTER_EXTXYZ, CLUSTER_EXTXYZ * 3,
    COPPER_EXTXYZ, COPPER_EXTXYZ + CLUSTER_EXTXYZ,
)  # fmt: skip

ETHANOL_MOL = """CCO
     RDKit          3D

  9  8  0  0  0  0  0  0  0  0999 V2000
    0.8967   -0.0768   -0.0151 C   0  0  0  0  0  0  0  0  0  0  0  0
   -0.5765   -0.3513    0.0599 C   0  0  0  0  0  0  0  0  0  0  0  0
   -1.3162    0.8114    0.2047 O   0  0  0  0  0  0  0  0  0  0  0  0
    1.2724    0.1453    1.0130 H   0  0  0  0  0  0  0  0  0  0  0  0
    1.0477    0.8226   -0.6255 H   0  0  0  0  0  0  0  0  0  0  0  0
    1.4477   -0.9655   -0.3449 H   0  0  0  0  0  0  0  0  0  0  0  0
   -0.7995   -0.9565    0.9744 H   0  0  0  0  0  0  0  0  0  0  0  0
   -0.8595   -0.9430   -0.8224 H   0  0  0  0  0  0  0  0  0  0  0  0
   -1.1128    1.5137   -0.4442 H   0  0  0  0  0  0  0  0  0  0  0  0
  1  2  1  0
  2  3  1  0
  1  4  1  0
  1  5  1  0
  1  6  1  0
  2  7  1  0
  2  8  1  0
  3  9  1  0
M  END
"""
WATER_MOL = """O
     RDKit          3D

  3  2  0  0  0  0  0  0  0  0999 V2000
   -0.0008    0.3668   -0.0000 O   0  0  0  0  0  0  0  0  0  0  0  0
   -0.8119   -0.1837   -0.0000 H   0  0  0  0  0  0  0  0  0  0  0  0
    0.8127   -0.1831    0.0000 H   0  0  0  0  0  0  0  0  0  0  0  0
  1  2  1  0
  1  3  1  0
M  END
"""
HCN_MOL_V3000 = """
     RDKit          3D

  0  0  0  0  0  0  0  0  0  0999 V3000
M  V30 BEGIN CTAB
M  V30 COUNTS 3 2 0 0 0
M  V30 BEGIN ATOM
M  V30 1 C -0.031984 -0.348222 0.000000 0
M  V30 2 N 0.973261 -0.924546 0.000000 0
M  V30 3 H -0.941277 0.174255 0.000000 0
M  V30 END ATOM
M  V30 BEGIN BOND
M  V30 1 3 1 2
M  V30 2 1 1 3
M  V30 END BOND
M  V30 END CTAB
M  END
"""
MOL_SEEDS = (ETHANOL_MOL, WATER_MOL, HCN_MOL_V3000)
SDF_SEEDS = (
    ETHANOL_MOL + "$$$$\n" + WATER_MOL + "$$$$\n",
    WATER_MOL + "> <energy>\n-76.4\n\n$$$$\n",
    HCN_MOL_V3000 + "$$$$\n" + ETHANOL_MOL + "$$$$\n",
)
SMILES_SEEDS = ("CCO\nC\n", "# molecules\nO water\n\nC#N\n", "c1ccccc1 benzene\n")


def _qm9_rows(count: int) -> str:
    with gzip.open(QM9_SAMPLE_PATH, "rt", encoding="utf-8") as file:
        return "".join(next(file) for _ in range(count + 1))


QM9_SEEDS = (_qm9_rows(1), _qm9_rows(3))

NUMBERS = (
    "nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e6", "-1e6", "1e5", "1e300", "-1e300",
    "1e-320", "0", "-0", "1e", "--1", "1.2.3", "0x1F", "1_000", "", " ", "abc", "\u0661",
    "9" * 40, "1e4", "2",
)  # fmt: skip
WORDS = (
    "Qq", "X", "Xx", "", "C1", "c", "CL", "h", "D", "Og", "Zz", "0", "119", "-1", "6", "\u00e9",
    "Properties", "energy", "forces", "pos", "species", "Lattice", "pbc", "V2000", "V3000", "END",
    "nan", "T", "F", "S", "R", "I", "L", "Z", "numbers",
)  # fmt: skip
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_WORD = re.compile(r"[A-Za-z]+")

_index = st.integers(min_value=0, max_value=1000)
_text_line = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40).map(
    lambda text: text + "\n"
)
_operation = st.one_of(
    st.tuples(st.just("delete"), _index),
    st.tuples(st.just("duplicate"), _index),
    st.tuples(st.just("swap"), _index, _index),
    st.tuples(st.just("number"), _index, _index, st.sampled_from(NUMBERS)),
    st.tuples(st.just("number"), _index, _index, st.sampled_from(NUMBERS)),
    st.tuples(st.just("word"), _index, _index, st.sampled_from(WORDS)),
    st.tuples(st.just("insert"), _index, _text_line),
    st.tuples(st.just("truncate"), _index),
    st.tuples(st.just("bytes"), _index, st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("bytes"), _index, st.sampled_from([b"\xff", b"\xe9", b"\x00", b"\r"])),
    st.tuples(st.just("crlf")),
)


def _replace_match(pattern: re.Pattern, line: str, which: int, new: str) -> str:
    matches = list(pattern.finditer(line))
    if not matches:
        return line
    match = matches[which % len(matches)]
    return line[: match.start()] + new + line[match.end() :]


def mutate(text: str, operations: Sequence[tuple]) -> bytes:
    """``text`` with ``operations`` applied: line and token edits first, then byte edits."""
    lines = text.splitlines(keepends=True)
    byte_edits = []
    for operation in operations:
        kind, *args = operation
        if kind in ("truncate", "bytes", "crlf"):
            byte_edits.append(operation)
            continue
        if not lines and kind != "insert":
            continue
        k = args[0] % max(len(lines), 1)
        if kind == "delete":
            del lines[k]
        elif kind == "duplicate":
            lines.insert(k, lines[k])
        elif kind == "swap":
            m = args[1] % len(lines)
            lines[k], lines[m] = lines[m], lines[k]
        elif kind == "number":
            lines[k] = _replace_match(_NUMBER, lines[k], args[1], args[2])
        elif kind == "word":
            lines[k] = _replace_match(_WORD, lines[k], args[1], args[2])
        elif kind == "insert":
            lines.insert(k, args[1])
    data = "".join(lines).encode("utf-8")
    for kind, *args in byte_edits:
        if kind == "truncate":
            data = data[: args[0] * len(data) // 1000]
        elif kind == "bytes":
            at = args[0] * len(data) // 1000
            data = data[:at] + args[1] + data[at:]
        elif kind == "crlf":
            data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return data


def mutations(seeds: Sequence[str]) -> st.SearchStrategy[bytes]:
    """Mutations of one of ``seeds`` by 0 to 4 operations (0: the seed itself)."""
    return st.builds(mutate, st.sampled_from(seeds), st.lists(_operation, max_size=4))


def file_contents(seeds: Sequence[str]) -> st.SearchStrategy[bytes]:
    """Mostly mutations of ``seeds``; also random bytes and random text."""
    mutated = mutations(seeds)
    return st.one_of(
        mutated,
        mutated,
        mutated,
        mutated,
        st.binary(max_size=300),
        st.text(max_size=300).map(lambda text: text.encode("utf-8")),
    )


_SYMBOLS = st.sampled_from(["H", "C", "N", "O", "F", "Cu", "Na", "Cl", "c", "X", "Qq", "D", "Og"])
_COORDINATES = st.one_of(
    st.floats(min_value=-20, max_value=20, allow_nan=False).map(repr),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(NUMBERS),
)
COMMENT_LINES = (
    "", "comment", "Properties=species:S:1:pos:R:3", "energy=1.0", 'pbc="T T T"',
    'Lattice="5 0 0 0 5 0 0 0 5" pbc="T T T"', "Properties=species:S:1:pos:R:2",
    "Properties=species:S:1:pos:R:3:Z:I:1", "energy=nan", "energy=abc",
)  # fmt: skip
_COMMENTS = st.one_of(
    st.sampled_from(COMMENT_LINES),
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"),
        max_size=30,
    ),
)


@st.composite
def xyz_files(draw) -> bytes:
    """Frames of ``count / comment / symbol x y z`` lines with random symbols, coordinates,
    counts that may not match, repeated atoms (identical positions) and 0-atom frames."""
    frames = []
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        atom = st.tuples(_SYMBOLS, _COORDINATES, _COORDINATES, _COORDINATES)
        atoms = draw(st.lists(atom, max_size=5))
        if atoms and draw(st.booleans()):
            atoms.append(atoms[draw(st.integers(min_value=0, max_value=len(atoms) - 1))])
        count = len(atoms) + draw(st.sampled_from([0, 0, 0, 0, -1, 1]))
        lines = [str(count), draw(_COMMENTS)] + [" ".join(atom) for atom in atoms]
        frames.append("\n".join(lines) + "\n")
    return "".join(frames).encode("utf-8")


SMILES_ALPHABET = "CNOSPFIBrcnosl()[]=#@+-123456789%H.\\/*:~$0 "
SMILES_EXAMPLES = (
    "C", "CCO", "[Na+].[Cl-]", "C1CC", "[Xe]", "[U]", "*", "[H]", "[2H]O", "C1=CC=CC=C1", "[Og]",
    "c1ccccc", "", " ", "C" * 20,
)  # fmt: skip


def smiles_strings() -> st.SearchStrategy[str]:
    """SMILES-like strings of up to 24 characters, and arbitrary text."""
    return st.one_of(
        st.text(alphabet=SMILES_ALPHABET, max_size=24),
        st.sampled_from(SMILES_EXAMPLES),
        st.text(max_size=24),
    )


def check_molecules(molecules, what: str) -> None:
    """Accepted molecules: ``z`` in [1, 118], finite float32 ``pos`` within
    ``MAX_COORDINATE``, no two atoms at one position."""
    assert isinstance(molecules, list) and molecules, what
    for data in molecules:
        n = data.z.numel()
        assert n >= 1 and data.num_nodes == n, what
        assert data.z.dtype == torch.long and bool(((data.z >= 1) & (data.z <= 118)).all()), what
        assert data.pos.dtype == torch.float32 and data.pos.shape == (n, 3), what
        assert bool(torch.isfinite(data.pos).all()), what
        assert float(data.pos.abs().max()) <= MAX_COORDINATE, what
        assert len(np.unique(data.pos.numpy(), axis=0)) == n, what


def check_error(error: Exception, *names: str) -> None:
    """A reader's error: a plain ``ValueError`` (not a subclass such as UnicodeDecodeError or
    pandas' ParserError) whose message names one of ``names``."""
    assert type(error) is ValueError, f"{type(error).__name__}: {error}"
    message = str(error)
    assert any(name in message for name in names), f"{names} not named in: {message}"


def plain_xyz(content: bytes) -> list[tuple[list[int], np.ndarray]] | str:
    """An independent reading of an xyz file whose comment lines hold no ``key=value``:
    ``[(z, pos), ...]``, ``"invalid"`` if it is not a valid xyz file, or ``"extended"`` if a
    comment line has extxyz keys (then there is no simple expectation)."""
    from flt3d.atomistic.elements import atomic_number

    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid"
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    frames, k = [], 0
    while k < len(lines):
        try:
            n = int(lines[k])
        except ValueError:
            return "invalid"
        if n < 0 or k + 2 + n > len(lines):
            return "invalid"
        if "=" in lines[k + 1] or '"' in lines[k + 1]:
            return "extended"
        z, pos = [], []
        for line in lines[k + 2 : k + 2 + n]:
            fields = line.split()
            if len(fields) < 4:
                return "invalid"
            try:
                z.append(atomic_number(fields[0]))
                pos.append([float(value) for value in fields[1:4]])
            except ValueError:
                return "invalid"
        frames.append((z, np.array(pos, dtype=np.float64).reshape(-1, 3)))
        k += 2 + n
    return frames or "invalid"


def geometry_ok(pos: np.ndarray) -> bool:
    """Whether the readers accept the coordinates ``pos [N, 3]`` (float64)."""
    if len(pos) == 0 or not np.isfinite(pos).all() or np.abs(pos).max() > MAX_COORDINATE:
        return False
    return len(np.unique(pos.astype(np.float32), axis=0)) == len(pos)
