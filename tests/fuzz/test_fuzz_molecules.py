"""Fuzzing ``flt3d.datasets.molecules``: xyz, extxyz, sdf, mol and SMILES files and strings.

A file either reads into sane molecules (and, for plain xyz, into what an independent reading
finds) or raises a plain ``ValueError`` naming it; nothing else escapes.
"""

import re

import numpy as np
import pytest
import torch
from fuzz_strategies import (
    MOL_SEEDS,
    SDF_SEEDS,
    SMILES_SEEDS,
    TIERS,
    WATER_XYZ,
    XYZ_SEEDS,
    check_error,
    check_molecules,
    file_contents,
    geometry_ok,
    plain_xyz,
    smiles_strings,
    xyz_files,
)
from hypothesis import given
from hypothesis import strategies as st

from flt3d.datasets.molecules import MAX_COORDINATE, from_ase, from_smiles, read_molecules

ase = pytest.importorskip("ase")
Chem = pytest.importorskip("rdkit.Chem")
RDLogger = pytest.importorskip("rdkit.RDLogger")


@pytest.fixture(scope="module", autouse=True)
def _quiet_rdkit():
    RDLogger.DisableLog("rdApp.*")  # rejected records are logged by RDKit as well
    yield
    RDLogger.EnableLog("rdApp.*")


def _read(folder, name: str, content: bytes):
    """The molecules of the file, or ``None`` after checking the error names the file."""
    path = folder / name
    path.write_bytes(content)
    try:
        molecules = read_molecules(path)
    except ValueError as error:
        check_error(error, repr(str(path)))
        return None
    check_molecules(molecules, str(path))
    return molecules


@pytest.mark.parametrize("tier", TIERS)
def test_xyz_files(tier, examples, tmp_path):
    @tier
    @given(st.one_of(file_contents(XYZ_SEEDS), xyz_files()), st.sampled_from([".xyz", ".extxyz"]))
    def run(content, extension):
        examples()
        molecules = _read(tmp_path, "input" + extension, content)
        expected = plain_xyz(content)
        if expected == "extended":
            return
        if expected == "invalid" or not all(geometry_ok(pos) for _, pos in expected):
            assert molecules is None, f"accepted an invalid file: {content!r}"
            return
        assert molecules is not None, f"rejected a valid file: {content!r}"
        assert len(molecules) == len(expected)
        for data, (z, pos) in zip(molecules, expected):
            assert data.z.tolist() == z
            assert torch.equal(data.pos, torch.from_numpy(pos.astype(np.float32)))

    run()


@pytest.mark.parametrize("tier", TIERS)
def test_sdf_files(tier, examples, tmp_path):
    @tier
    @given(file_contents(SDF_SEEDS))
    def run(content):
        examples()
        _read(tmp_path, "input.sdf", content)

    run()


@pytest.mark.parametrize("tier", TIERS)
def test_mol_files(tier, examples, tmp_path):
    @tier
    @given(file_contents(MOL_SEEDS))
    def run(content):
        examples()
        _read(tmp_path, "input.mol", content)

    run()


@pytest.mark.parametrize("tier", TIERS)
def test_smiles_files(tier, examples, tmp_path):
    @tier
    @given(file_contents(SMILES_SEEDS))
    def run(content):
        examples()
        _read(tmp_path, "input.smi", content)

    run()


@pytest.mark.parametrize("tier", TIERS)
def test_from_smiles(tier, examples):
    @tier
    @given(smiles_strings())
    def run(smiles):
        examples()
        try:
            data = from_smiles(smiles)
        except ValueError as error:
            check_error(error, repr(smiles))
            return
        check_molecules([data], repr(smiles))
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        assert data.z.tolist() == [atom.GetAtomicNum() for atom in mol.GetAtoms()]
        assert data.smiles == smiles

    run()


# ----------------------------------------------------------------------------- regressions


def _water_lines():
    return WATER_XYZ.splitlines(keepends=True)


def test_smiles_file_that_is_not_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "latin1.smi"
    path.write_bytes(b"CCO\nC\xe9\n")
    with pytest.raises(ValueError, match=r"line 2 of .*latin1\.smi.*expected UTF-8 text") as info:
        read_molecules(path)
    assert type(info.value) is ValueError


@pytest.mark.parametrize("separator", ["\n", "   \n", "\r\n"])
def test_xyz_frames_after_a_blank_line_are_not_dropped(tmp_path, separator):
    path = tmp_path / "two.xyz"
    path.write_text(WATER_XYZ + separator + WATER_XYZ, newline="")
    with pytest.raises(ValueError, match=r"two\.xyz.*blank line ends its 1 frame\(s\).*line 7"):
        read_molecules(path)
    path.write_text(WATER_XYZ + "\n\n")  # trailing blank lines end the file: fine
    assert len(read_molecules(path)) == 1


def test_xyz_leading_blank_line(tmp_path):
    path = tmp_path / "lead.xyz"
    path.write_text("\n" + WATER_XYZ)
    with pytest.raises(ValueError, match=r"lead\.xyz.*blank line ends its 0 frame\(s\).*line 2"):
        read_molecules(path)


@pytest.mark.parametrize("value", ["1e6", "-1e6", "1.0001e4", "1e300"])
def test_coordinates_beyond_the_limit_are_rejected(tmp_path, value):
    lines = _water_lines()
    lines[3] = f"H 0.0 {value} -0.467\n"
    path = tmp_path / "far.xyz"
    path.write_text("".join(lines))
    with pytest.raises(
        ValueError, match=r"frame 1 of .*far\.xyz.*beyond ±10000 Å \(atom\(s\) \[1\]"
    ):
        read_molecules(path)


def test_coordinates_at_the_limit_are_kept(tmp_path):
    lines = _water_lines()
    lines[2] = f"O 0.0 0.0 {MAX_COORDINATE}\n"
    path = tmp_path / "edge.xyz"
    path.write_text("".join(lines))
    [data] = read_molecules(path)
    assert data.pos[0, 2].item() == MAX_COORDINATE


def test_repeated_atom_is_rejected(tmp_path):
    lines = _water_lines()
    path = tmp_path / "dup.xyz"
    path.write_text("4\n" + "".join(lines[1:]) + lines[3])
    with pytest.raises(
        ValueError, match=r"frame 1 of .*dup\.xyz.* atoms 1 and 3 at the same position"
    ):
        read_molecules(path)


def test_repeated_atom_in_sdf_is_rejected(tmp_path):
    block = SDF_SEEDS[1].splitlines(keepends=True)
    block[6] = block[5]  # the second hydrogen onto the first
    path = tmp_path / "dup.sdf"
    path.write_text("".join(block))
    with pytest.raises(ValueError, match=r"record 1 of .*dup\.sdf.* atoms 1 and 2 at the same"):
        read_molecules(path)


def test_close_atoms_are_kept():
    atoms = ase.Atoms("H2", positions=[[0.0, 0.0, 0.0], [0.0, 0.0, 1e-3]])
    assert from_ase(atoms, name="pair").pos.shape == (2, 3)
    with pytest.raises(ValueError, match="pair has atoms 0 and 1 at the same position"):
        from_ase(ase.Atoms("H2", positions=[[0.0, 0.0, 0.0], [0.0, 0.0, -0.0]]), name="pair")


@pytest.mark.parametrize("seed", [2**31, 10**20])
def test_smiles_seed_beyond_c_int(seed):
    with pytest.raises(
        ValueError, match=rf"seed must be a non-negative integer below 2\*\*31, got {seed}"
    ):
        from_smiles("C", seed=seed)
    assert from_smiles("C", seed=2**31 - 1).z.tolist() == [6, 1, 1, 1, 1]


@pytest.mark.parametrize("smiles", ["*", "**", "C*C", "[*]O"])
def test_smiles_with_dummy_atoms(smiles):
    with pytest.raises(ValueError, match=rf"SMILES '{re.escape(smiles)}' has a dummy atom"):
        from_smiles(smiles)


def test_rdkit_failure_while_embedding_names_the_smiles(monkeypatch):
    AllChem = pytest.importorskip("rdkit.Chem.AllChem")

    def violated(*args, **kwargs):
        raise RuntimeError("Invariant Violation\n\tbad direction in linearSearch")

    monkeypatch.setattr(AllChem, "EmbedMolecule", violated)
    with pytest.raises(ValueError, match=r"RDKit failed to embed SMILES 'CCO' in 3D: Invariant"):
        from_smiles("CCO")


@pytest.mark.parametrize("count", ["9" * 40, "1000000000", "4"])
def test_atom_count_beyond_the_end_of_the_file(tmp_path, count):
    path = tmp_path / "count.xyz"  # ASE would read lines past the end for ever
    path.write_text(WATER_XYZ.replace("3", count, 1))
    pattern = rf"count\.xyz' as \(ext\)xyz: line 1 announces {count} atom\(s\), but only 4 line"
    with pytest.raises(ValueError, match=pattern):
        read_molecules(path)
