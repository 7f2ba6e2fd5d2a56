"""Fuzzing ``read_structures``: extxyz files with energies and forces, ASE databases, ``index``.

A file either reads into sane structures (finite energies and forces of the right shapes) or
raises a plain ``ValueError`` naming it (or the ``index`` that selects badly).
"""

import numpy as np
import pytest
import torch
from fuzz_strategies import (
    CLUSTER_EXTXYZ,
    STRUCTURE_SEEDS,
    TIERS,
    WATER_EXTXYZ,
    check_error,
    check_molecules,
    file_contents,
    mutate,
    xyz_files,
)
from hypothesis import given
from hypothesis import strategies as st

from flt3d.datasets.atoms import read_structures

ase = pytest.importorskip("ase")
ase_db = pytest.importorskip("ase.db")

INDICES = st.one_of(
    st.just(":"),
    st.sampled_from([0, -1, 5, "::2", "1:", "-1", "0:0", "::0", "1:2:3:4", "x", "", "natoms<3"]),
    st.integers(min_value=-4, max_value=4),
    st.text(alphabet=":-0123456789", max_size=6),
)


def _check_structures(structures, path, energy_key) -> None:
    check_molecules(structures, str(path))
    for data in structures:
        n = data.num_nodes
        assert data.cell.shape == (1, 3, 3) and bool(torch.isfinite(data.cell).all())
        assert data.pbc.shape == (1, 3) and data.natoms.tolist() == [n]
        if energy_key is not None:
            assert data.energy.dtype == torch.float64 and data.energy.shape == (1, 1)
            assert bool(torch.isfinite(data.energy).all())
        if "forces" in data:
            assert data.forces.shape == (n, 3) and bool(torch.isfinite(data.forces).all())
    if any("forces" in data for data in structures):
        assert all("forces" in data for data in structures)


def _read(path, **options):
    try:
        structures = read_structures(path, **options)
    except ValueError as error:
        check_error(error, repr(str(path)), repr(options.get("index", ":")))
        return None
    _check_structures(structures, path, options.get("energy_key", "energy"))
    return structures


@pytest.mark.parametrize("tier", TIERS)
def test_extxyz_files(tier, examples, tmp_path):
    @tier
    @given(
        st.one_of(file_contents(STRUCTURE_SEEDS), xyz_files()),
        st.sampled_from(["energy", None]),
        st.sampled_from([None, ["charge"]]),
        INDICES,
    )
    def run(content, energy_key, properties, index):
        examples()
        path = tmp_path / "input.extxyz"
        path.write_bytes(content)
        _read(path, energy_key=energy_key, properties=properties, index=index)

    run()


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    """The bytes of an ASE database with two labelled structures."""
    from ase.calculators.singlepoint import SinglePointCalculator

    path = tmp_path_factory.mktemp("db") / "two.db"
    with ase_db.connect(str(path)) as connection:
        for k, n in enumerate((2, 3)):
            atoms = ase.Atoms(f"Cu{n}", positions=[[2.5 * i, 0.0, 0.0] for i in range(n)])
            forces = np.zeros((n, 3))
            atoms.calc = SinglePointCalculator(atoms, energy=float(k), forces=forces)
            connection.write(atoms)
    return path.read_bytes()


@pytest.mark.parametrize("tier", TIERS)
def test_database_files(tier, examples, tmp_path, database):
    @tier
    @given(
        st.integers(min_value=0, max_value=1000),
        st.integers(min_value=0, max_value=10**6),
        st.binary(min_size=0, max_size=16),
        st.sampled_from([":", "natoms<3", "natoms>9", "x=", "energy<0.5", 0, -1]),
    )
    def run(cut, at, junk, index):
        examples()
        content = bytearray(database[: max(cut, 1) * len(database) // 1000])
        if junk and content:
            start = at % len(content)
            content[start : start + len(junk)] = junk
        path = tmp_path / "input.db"
        path.write_bytes(bytes(content))
        _read(path, index=index)

    run()


# ----------------------------------------------------------------------------- regressions


def test_structures_after_a_blank_line_are_not_dropped(tmp_path):
    path = tmp_path / "two.extxyz"
    path.write_text(WATER_EXTXYZ + "\n" + CLUSTER_EXTXYZ)
    with pytest.raises(ValueError, match=r"two\.extxyz', structure 1: .*blank line ends .*line 7"):
        read_structures(path)
    path.write_text(WATER_EXTXYZ + CLUSTER_EXTXYZ + "\n\n")
    assert [data.num_nodes for data in read_structures(path)] == [3, 2]


def test_atom_count_beyond_the_end_of_the_file(tmp_path):
    path = tmp_path / "count.extxyz"  # ASE would read lines past the end for ever
    path.write_text(WATER_EXTXYZ + CLUSTER_EXTXYZ.replace("2", "9" * 30, 1))
    pattern = rf"count\.extxyz', structure 1: cannot parse \(line 6 announces {'9' * 30} atom"
    with pytest.raises(ValueError, match=pattern):
        read_structures(path)


def test_coordinates_beyond_the_limit(tmp_path):
    path = tmp_path / "far.extxyz"
    path.write_bytes(WATER_EXTXYZ.encode() + mutate(CLUSTER_EXTXYZ, [("number", 3, 1, "1e6")]))
    with pytest.raises(
        ValueError, match=r"far\.extxyz', structure 1 has coordinates beyond ±10000"
    ):
        read_structures(path)


def test_repeated_atom(tmp_path):
    path = tmp_path / "dup.extxyz"
    lines = CLUSTER_EXTXYZ.splitlines(keepends=True)
    path.write_text("3\n" + lines[1] + lines[2] + lines[2] + lines[3])
    with pytest.raises(
        ValueError, match=r"dup\.extxyz', structure 0 has atoms 0 and 1 at the same"
    ):
        read_structures(path)


@pytest.mark.parametrize(
    ("index", "message"),
    [
        ("::0", r"index '::0' has step 0"),
        (slice(None, None, 0), r"index slice\(None, None, 0\) has step 0"),
        (slice("a", None), r"index slice\('a', None, None\) must be a slice of integers"),
        ("1:2:3:4", r"two\.extxyz': index '1:2:3:4' is not an ASE index string"),
        ("natoms<3", r"two\.extxyz': index 'natoms<3' is not .* ASE databases \(\.db\) only"),
    ],
)
def test_bad_index(tmp_path, index, message):
    path = tmp_path / "two.extxyz"
    path.write_text(WATER_EXTXYZ + CLUSTER_EXTXYZ)
    with pytest.raises(ValueError, match=message) as info:
        read_structures(path, index=index)
    assert type(info.value) is ValueError
