import re
import sys

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from flt3d.datasets import (
    QM9_Z,
    atomic_number,
    check_elements,
    element_symbol,
    from_ase,
    from_rdkit,
    from_smiles,
    read_molecules,
)

ase = pytest.importorskip("ase")
ase_io = pytest.importorskip("ase.io")
Chem = pytest.importorskip("rdkit.Chem")
AllChem = pytest.importorskip("rdkit.Chem.AllChem")


def _water():
    return ase.Atoms("OH2", positions=[[0.0, 0.0, 0.1], [0.757, 0.586, 0.0], [-0.757, 0.586, 0.0]])


def _methane():
    d = 0.629
    positions = [[0, 0, 0], [d, d, d], [-d, -d, d], [-d, d, -d], [d, -d, -d]]
    return ase.Atoms("CH4", positions=positions)


def _rdkit_mol(smiles, seed=7):
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=seed) == 0
    return mol


def _distance(data, i, j):
    return (data.pos[i] - data.pos[j]).norm().item()


def _check_form(data):
    assert data.z.dtype == torch.long and data.z.dim() == 1
    assert data.pos.dtype == torch.float32 and data.pos.shape == (data.z.numel(), 3)
    assert data.num_nodes == data.z.numel()


# ----------------------------------------------------------------------------- elements


def test_element_table():
    assert [atomic_number(s) for s in ("H", "c", " Cl ", "Og")] == [1, 6, 17, 118]
    assert [element_symbol(z) for z in (1, 8, 9, np.int64(26), torch.tensor(92))] == [
        "H", "O", "F", "Fe", "U",
    ]  # fmt: skip
    for bad in ("Xq", "", 3):
        with pytest.raises(ValueError):
            atomic_number(bad)
    for bad in (0, 119, 1.0, True, "C"):
        with pytest.raises(ValueError):
            element_symbol(bad)


# ----------------------------------------------------------------------------- xyz / extxyz


@pytest.mark.parametrize(
    ("suffix", "fmt"), [(".xyz", "xyz"), (".extxyz", "extxyz"), (".XYZ", "xyz")]
)
def test_xyz_roundtrip(tmp_path, suffix, fmt):
    path = tmp_path / f"two{suffix}"
    frames = [_water(), _methane()]
    ase_io.write(path, frames, format=fmt)
    molecules = read_molecules(path)
    assert len(molecules) == 2
    for data, atoms in zip(molecules, frames, strict=True):
        _check_form(data)
        assert data.z.tolist() == atoms.numbers.tolist()
        assert np.allclose(data.pos.numpy(), atoms.positions, atol=1e-6)
        assert "smiles" not in data


def test_from_ase():
    data = from_ase(_water())
    _check_form(data)
    assert data.z.tolist() == [8, 1, 1]
    assert _distance(data, 0, 1) == pytest.approx(0.9626, abs=1e-3)


# ----------------------------------------------------------------------------- sdf / mol


def test_sdf_roundtrip(tmp_path):
    path = tmp_path / "mols.sdf"
    mols = [_rdkit_mol("CCO"), _rdkit_mol("c1ccccc1"), _rdkit_mol("FC(F)F")]
    with Chem.SDWriter(str(path)) as writer:
        for mol in mols:
            writer.write(mol)
    molecules = read_molecules(path)
    assert len(molecules) == 3
    for data, mol in zip(molecules, mols, strict=True):
        _check_form(data)
        assert data.z.tolist() == [atom.GetAtomicNum() for atom in mol.GetAtoms()]
        # the molfile stores 4 decimals
        assert np.allclose(data.pos.numpy(), mol.GetConformer().GetPositions(), atol=1e-4)
    assert [data.smiles for data in molecules] == ["CCO", "c1ccccc1", "FC(F)F"]
    assert (molecules[1].z == 1).sum() == 6


def test_mol_roundtrip(tmp_path):
    path = tmp_path / "one.mol"
    mol = _rdkit_mol("CC(=O)N")
    Chem.MolToMolFile(mol, str(path))
    (data,) = read_molecules(path)
    assert data.smiles == "CC(N)=O"
    assert np.allclose(data.pos.numpy(), mol.GetConformer().GetPositions(), atol=1e-4)


def test_from_rdkit_conformer_choice():
    mol = Chem.AddHs(Chem.MolFromSmiles("CCCC"))
    ids = list(AllChem.EmbedMultipleConfs(mol, numConfs=2, randomSeed=3))
    first, second = (from_rdkit(mol, conf_id=i) for i in ids)
    assert not torch.allclose(first.pos, second.pos)
    with pytest.raises(ValueError, match="no conformer with id 99"):
        from_rdkit(mol, conf_id=99)


# ----------------------------------------------------------------------------- SMILES


def test_from_smiles_geometry():
    data = from_smiles("CC")
    _check_form(data)
    assert data.z.tolist() == [6, 6, 1, 1, 1, 1, 1, 1]
    assert data.smiles == "CC"
    # MMFF94 ethane: C-C 1.51 Å, C-H 1.09 Å (QM9's B3LYP value is 1.53 / 1.09)
    assert abs(_distance(data, 0, 1) - 1.52) < 0.03  # C-C single bond
    assert all(1.07 < _distance(data, 0, h) < 1.11 for h in (2, 3, 4))


def test_from_smiles_aromatic_and_seeded():
    benzene = from_smiles("c1ccccc1", seed=3)
    ring = [_distance(benzene, i, (i + 1) % 6) for i in range(6)]
    assert all(1.37 < d < 1.42 for d in ring)
    again = from_smiles("c1ccccc1", seed=3)
    assert torch.equal(benzene.pos, again.pos)


def test_from_smiles_without_optimization():
    data = from_smiles("CCO", optimize=False)
    assert data.num_nodes == 9


def test_smiles_file(tmp_path):
    path = tmp_path / "list.smi"
    path.write_text("# a comment\nCCO ethanol\n\nC#N\n")
    molecules = read_molecules(path)
    assert [data.smiles for data in molecules] == ["CCO", "C#N"]
    assert [data.num_nodes for data in molecules] == [9, 3]


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("smiles", ["C1CC", "C(C", "Xx", "CC)"])
def test_bad_smiles(smiles):
    with pytest.raises(ValueError, match=re.escape(f"could not parse SMILES '{smiles}'")):
        from_smiles(smiles)


def test_smiles_input_checks():
    with pytest.raises(ValueError, match="no atoms"):
        from_smiles("")
    with pytest.raises(ValueError, match="SMILES string"):
        from_smiles(None)
    with pytest.raises(ValueError, match="seed"):
        from_smiles("C", seed=-1)


def test_unknown_extension(tmp_path):
    path = tmp_path / "mol.pdb"
    path.write_text("ATOM\n")
    with pytest.raises(ValueError, match=r"unknown extension '\.pdb'.*\.xyz"):
        read_molecules(path)


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match=r"nothere\.sdf.*no such file"):
        read_molecules(tmp_path / "nothere.sdf")


@pytest.mark.parametrize(
    "text",
    [
        "3\nwater\nO 0 0 0\nH 0.96 0 0\nH abc 0.93 0\n",  # a bad coordinate
        "3\nwater\nO 0 0 0\nH 0.96 0 0\n",  # truncated frame
        "two\nwater\nO 0 0 0\n",  # bad atom count line
    ],
)
def test_malformed_xyz(tmp_path, text):
    path = tmp_path / "bad.xyz"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"cannot parse .*bad\.xyz"):
        read_molecules(path)


def test_empty_files(tmp_path):
    for name in ("empty.xyz", "empty.sdf", "empty.smi"):
        path = tmp_path / name
        path.write_text("" if name != "empty.smi" else "# nothing\n")
        with pytest.raises(ValueError, match=name.replace(".", r"\.")):
            read_molecules(path)


def test_nan_coordinates(tmp_path):
    path = tmp_path / "nan.xyz"
    path.write_text("2\n\nH 0 0 0\nH 0 0 0.74\n2\n\nH 0 0 0\nH nan 0 0.74\n")
    with pytest.raises(ValueError, match=r"frame 2 of .*nan\.xyz.*NaN"):
        read_molecules(path)
    atoms = _water()
    atoms.positions[1, 2] = np.inf
    with pytest.raises(ValueError, match=r"NaN or infinite.*\[1\]"):
        from_ase(atoms)


def test_sdf_bad_record_is_named(tmp_path):
    block = Chem.MolToMolBlock(_rdkit_mol("CO"))
    lines = block.splitlines()
    lines[4] = "  garbage line"
    path = tmp_path / "bad.sdf"
    path.write_text(block + "$$$$\n" + "\n".join(lines) + "\n$$$$\n" + block + "$$$$\n")
    with pytest.raises(ValueError, match=r"record 2 of .*bad\.sdf"):
        read_molecules(path)


def test_bad_mol_file(tmp_path):
    path = tmp_path / "bad.mol"
    path.write_text("not a molfile\n")
    with pytest.raises(ValueError, match=r"cannot parse .*bad\.mol"):
        read_molecules(path)


def test_bad_line_in_smiles_file(tmp_path):
    path = tmp_path / "list.smi"
    path.write_text("CCO\nC1CC\n")
    with pytest.raises(ValueError, match=r"line 2 of .*list\.smi.*'C1CC'"):
        read_molecules(path)


def test_no_conformer():
    with pytest.raises(ValueError, match=r"'CCO' has no conformer"):
        from_rdkit(Chem.MolFromSmiles("CCO"))


def test_two_dimensional_conformer():
    mol = Chem.AddHs(Chem.MolFromSmiles("CCO"))
    AllChem.Compute2DCoords(mol)
    with pytest.raises(ValueError, match="2D conformer"):
        from_rdkit(mol)


def test_implicit_hydrogens(tmp_path):
    heavy = Chem.RemoveHs(_rdkit_mol("CO"))
    with pytest.raises(ValueError, match="4 implicit hydrogen"):
        from_rdkit(heavy)
    path = tmp_path / "heavy.sdf"
    path.write_text(Chem.MolToMolBlock(heavy) + "$$$$\n")
    with pytest.raises(ValueError, match=r"record 1 of .*heavy\.sdf.*implicit hydrogen"):
        read_molecules(path)
    (data,) = read_molecules(path, allow_implicit_hydrogens=True)
    assert data.z.tolist() == [6, 8]


def test_wrong_types():
    with pytest.raises(ValueError, match="expected an ase.Atoms"):
        from_ase("H2O")
    with pytest.raises(ValueError, match="expected an rdkit.Chem.Mol"):
        from_rdkit(_water())
    with pytest.raises(ValueError, match="no atoms"):
        from_ase(ase.Atoms())
    with pytest.raises(ValueError, match=r"atomic number\(s\) \[0\]"):
        from_ase(ase.Atoms("X", positions=[[0, 0, 0]]))


def test_missing_extras(tmp_path, monkeypatch):
    path = tmp_path / "water.xyz"
    ase_io.write(path, _water())
    monkeypatch.setitem(sys.modules, "rdkit.Chem", None)
    with pytest.raises(ImportError, match=r"flt3d\[molecules\]"):
        from_smiles("CC")
    monkeypatch.setitem(sys.modules, "ase.io", None)
    with pytest.raises(ImportError, match=r"flt3d\[molecules\]"):
        read_molecules(path)


# ----------------------------------------------------------------------------- check_elements


def test_check_elements():
    methane = from_ase(_methane())
    check_elements(methane, QM9_Z)
    check_elements([methane, from_ase(_water())], ["H", "C", "N", "O", "F"])
    sulfur = Data(z=torch.tensor([16, 6, 1, 35]), smiles="CS")
    with pytest.raises(
        ValueError, match=r"molecule 1 \('CS'\) contains element\(s\) S, Br outside"
    ):
        check_elements([methane, sulfur], QM9_Z)
    with pytest.raises(ValueError, match=r"element\(s\) C outside the allowed set H, O"):
        check_elements(methane, [1, 8])
    with pytest.raises(ValueError):
        check_elements(methane, ["Xq"])
