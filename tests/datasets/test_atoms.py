import os
import re

import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

from flt3d.datasets import EMT_COPPER_SAMPLE_PATH, AtomRef, AtomsDataset, read_structures

ase = pytest.importorskip("ase")
ase_io = pytest.importorskip("ase.io")
from ase.calculators.emt import EMT  # noqa: E402
from ase.calculators.singlepoint import SinglePointCalculator  # noqa: E402

SAMPLE_STRUCTURES = 300
SAMPLE_ATOMS = 11_295


@pytest.fixture(scope="module")
def sample():
    return read_structures(EMT_COPPER_SAMPLE_PATH, properties=["temperature_K", "run"])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return AtomsDataset(EMT_COPPER_SAMPLE_PATH, tmp_path_factory.mktemp("atoms"))


def _frames(count=3):
    """Small labelled structures: EMT copper clusters, one periodic slab, SinglePointCalculator."""
    frames = []
    for k in range(count):
        steps = np.arange(3 + k, dtype=np.float64)
        positions = np.stack([2.5 * steps, 0.3 * steps**2, np.full_like(steps, 0.1 * k)], axis=1)
        atoms = ase.Atoms("Cu" * (3 + k), positions=positions)
        atoms.calc = EMT()
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        atoms.info["charge_state"] = float(k)
        frames.append(atoms)
    slab = ase.Atoms("CuAu", positions=[[0, 0, 0], [1.3, 1.3, 1.8]], cell=[2.6, 2.6, 12.0])
    slab.pbc = (True, True, False)
    slab.calc = SinglePointCalculator(slab, energy=-1.25, forces=np.full((2, 3), 0.5))
    slab.info["charge_state"] = 7.0
    frames.append(slab)
    return frames


def _write_text(path, text):
    path.write_text(text)
    return str(path)


def _extxyz(energy="energy=1.5 ", properties="species:S:1:pos:R:3", lines=None):
    lines = lines or ["Cu 0.0 0.0 0.0", "Cu 0.0 0.0 2.5"]
    return f'{len(lines)}\nProperties={properties} {energy}pbc="F F F"\n' + "\n".join(lines) + "\n"


def test_sample_counts_shapes_dtypes(sample):
    assert os.path.getsize(EMT_COPPER_SAMPLE_PATH) <= 1.5 * 2**20
    assert len(sample) == SAMPLE_STRUCTURES
    assert sum(int(data.natoms) for data in sample) == SAMPLE_ATOMS
    for position, data in enumerate(sample):
        n = data.num_nodes
        assert 13 <= n <= 150
        assert data.z.dtype == torch.long and data.z.shape == (n,) and (data.z == 29).all()
        assert data.pos.dtype == torch.float32 and data.pos.shape == (n, 3)
        assert data.forces.dtype == torch.float32 and data.forces.shape == (n, 3)
        assert data.energy.dtype == torch.float64 and data.energy.shape == (1, 1)
        assert data.cell.dtype == torch.float32 and data.cell.shape == (1, 3, 3)
        assert data.pbc.dtype == torch.bool and data.pbc.shape == (1, 3)
        assert not data.pbc.any() and (data.cell == 0).all()
        assert data.natoms.tolist() == [n] and data.idx.tolist() == [position]
        assert data.y.dtype == torch.float32 and data.y.shape == (1, 2)
    temperatures = {float(data.y[0, 0]) for data in sample}
    assert temperatures == {300.0, 500.0, 700.0, 1000.0}
    # EMT copper clusters lie above the bulk reference: positive energies, ~0.4-1 eV/atom.
    per_atom = torch.cat([data.energy[0] / data.num_nodes for data in sample])
    assert (per_atom > 0.3).all() and (per_atom < 1.2).all()
    # Isolated clusters: forces sum to zero (no external field).
    for data in sample[:20]:
        assert data.forces.double().sum(dim=0).abs().max() < 1e-5


@pytest.mark.parametrize("position", [0, 7, 299])
def test_sample_labels_are_emt(sample, position):
    data = sample[position]
    # Recompute on the file's float64 coordinates (data.pos is a float32 copy).
    atoms = ase_io.read(EMT_COPPER_SAMPLE_PATH, index=position)
    assert atoms.numbers.tolist() == data.z.tolist()
    torch.testing.assert_close(data.pos, torch.from_numpy(atoms.positions).float())
    atoms.calc = EMT()
    assert float(data.energy) == pytest.approx(atoms.get_potential_energy(), abs=1e-9)
    forces = torch.from_numpy(atoms.get_forces()).float()
    torch.testing.assert_close(data.forces, forces, atol=1e-6, rtol=0)


def test_batches(sample):
    batch = next(iter(DataLoader(sample[:4], batch_size=4)))
    assert batch.energy.shape == (4, 1) and batch.energy.dtype == torch.float64
    assert batch.cell.shape == (4, 3, 3) and batch.pbc.shape == (4, 3)
    assert batch.natoms.tolist() == [data.num_nodes for data in sample[:4]]
    assert batch.forces.shape == batch.pos.shape
    assert batch.idx.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("extension", [".db", ".traj", ".extxyz"])
def test_round_trip(tmp_path, extension):
    frames = _frames()
    path = str(tmp_path / f"frames{extension}")
    ase_io.write(path, frames)
    properties = None if extension == ".db" else ["charge_state"]  # ase.db drops atoms.info
    structures = read_structures(path, properties=properties)
    assert len(structures) == len(frames)
    for position, (atoms, data) in enumerate(zip(frames, structures)):
        assert data.idx.tolist() == [position]
        assert data.z.tolist() == atoms.numbers.tolist()
        torch.testing.assert_close(data.pos, torch.from_numpy(atoms.positions).float())
        assert float(data.energy) == pytest.approx(atoms.get_potential_energy(), abs=1e-12)
        torch.testing.assert_close(data.forces, torch.from_numpy(atoms.get_forces()).float())
        torch.testing.assert_close(data.cell[0], torch.from_numpy(atoms.cell.array).float())
        assert data.pbc[0].tolist() == atoms.pbc.tolist()
        if properties:
            assert data.y.tolist() == [[atoms.info["charge_state"]]]
        else:
            assert "y" not in data
    assert structures[-1].pbc.tolist() == [[True, True, False]]
    assert structures[-1].z.tolist() == [29, 79]


def test_index_selection(tmp_path):
    path = str(tmp_path / "frames.traj")
    ase_io.write(path, _frames())
    assert [int(d.idx) for d in read_structures(path, index="1:")] == [1, 2, 3]
    assert [int(d.idx) for d in read_structures(path, index=-1)] == [3]
    assert [int(d.idx) for d in read_structures(path, index=slice(None, None, 2))] == [0, 2]
    with pytest.raises(ValueError, match=r"index 9 is out of range for its 4 structures"):
        read_structures(path, index=9)
    with pytest.raises(ValueError, match=r"selects none of its 4 structures"):
        read_structures(path, index="5:")


def test_info_keys_and_no_forces(tmp_path):
    frames = []
    for k in range(2):
        atoms = ase.Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 2.4 + 0.1 * k]])
        atoms.info["REF_energy"] = -3.0 - k
        frames.append(atoms)
    path = str(tmp_path / "noforces.extxyz")
    ase_io.write(path, frames)
    structures = read_structures(path, energy_key="REF_energy")
    assert [float(d.energy) for d in structures] == [-3.0, -4.0]
    assert all("forces" not in d for d in structures)
    message = r"structure 0: no energy 'energy' \(atoms.info has REF_energy, there is no calculator"
    with pytest.raises(ValueError, match=message):
        read_structures(path)


def test_properties_missing(tmp_path):
    path = str(tmp_path / "frames.traj")
    ase_io.write(path, _frames())
    with pytest.raises(ValueError, match=r"structure 0: no property 'dipole_norm'"):
        read_structures(path, properties=["dipole_norm"])
    with pytest.raises(ValueError, match="properties must be a sequence of names"):
        read_structures(path, properties="charge_state")


def _bad_file(tmp_path, kind):
    good = _extxyz()
    if kind == "truncated":
        text = good + good + good.rsplit("\n", 2)[0]
        return _write_text(tmp_path / "truncated.extxyz", text), r"structure 2: cannot parse"
    if kind == "force shape":
        lines = ["Cu 0.0 0.0 0.0 0.1 0.2", "Cu 0.0 0.0 2.5 0.1 0.2"]
        text = good + _extxyz(properties="species:S:1:pos:R:3:forces:R:2", lines=lines)
        return (
            _write_text(tmp_path / "forces.extxyz", text),
            r"structure 1: forces 'forces' must be real numbers of shape \[2, 3\], got an "
            r"array of shape \(2, 2\)",
        )
    if kind == "missing energy":
        text = good + good + _extxyz(energy="")
        return _write_text(tmp_path / "noenergy.extxyz", text), r"structure 2: no energy 'energy'"
    if kind == "NaN coordinates":
        text = good + _extxyz(lines=["Cu 0.0 nan 0.0", "Cu 0.0 0.0 2.5"])
        return (
            _write_text(tmp_path / "nan.extxyz", text),
            r"structure 1: NaN or infinite coordinates \(atom\(s\) \[0\]\)",
        )
    if kind == "NaN energy":
        text = good + _extxyz(energy="energy=nan ")
        message = r"structure 1: energy 'energy' is nan"
        return _write_text(tmp_path / "nanenergy.extxyz", text), message
    if kind == "NaN forces":
        lines = ["Cu 0.0 0.0 0.0 0.1 0.2 inf", "Cu 0.0 0.0 2.5 0.1 0.2 0.3"]
        text = _extxyz(properties="species:S:1:pos:R:3:forces:R:3", lines=lines)
        return (
            _write_text(tmp_path / "nanforces.extxyz", text),
            r"structure 0: NaN or infinite forces 'forces' \(atom\(s\) \[0\]\)",
        )
    if kind == "dummy atom":
        text = good + _extxyz(lines=["X 0.0 1.0 0.0", "Cu 0.0 0.0 2.5"])
        return (
            _write_text(tmp_path / "dummy.extxyz", text),
            r"structure 1: non-physical atomic number\(s\) \[0\]",
        )
    if kind == "no atoms":
        text = good + '0\nProperties=species:S:1:pos:R:3 energy=0.0 pbc="F F F"\n'
        return _write_text(tmp_path / "noatoms.extxyz", text), r"structure 1: has no atoms"
    if kind == "forces in some":
        lines = ["Cu 0.0 0.0 0.0 0.1 0.2 0.3", "Cu 0.0 0.0 2.5 0.1 0.2 0.3"]
        text = _extxyz(properties="species:S:1:pos:R:3:forces:R:3", lines=lines) + good
        return (
            _write_text(tmp_path / "someforces.extxyz", text),
            r"structure 1: no forces 'forces', but structure 0 has them",
        )
    if kind == "empty":
        return _write_text(tmp_path / "empty.extxyz", ""), r"is empty"
    if kind == "junk":
        return _write_text(tmp_path / "junk.extxyz", "hello\nworld\n"), r"structure 0: cannot parse"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "truncated",
        "force shape",
        "missing energy",
        "NaN coordinates",
        "NaN energy",
        "NaN forces",
        "dummy atom",
        "no atoms",
        "forces in some",
        "empty",
        "junk",
    ],
)
def test_bad_inputs(tmp_path, kind):
    path, message = _bad_file(tmp_path, kind)
    with pytest.raises(ValueError, match=re.escape(repr(path)) + ".*" + message) as info:
        read_structures(path)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=message):
        AtomsDataset(path, tmp_path / "cache")


def test_missing_file_and_keys(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        read_structures(tmp_path / "absent.extxyz")
    with pytest.raises(ValueError, match="no such file"):
        AtomsDataset(tmp_path / "absent.extxyz", tmp_path)
    with pytest.raises(ValueError, match="energy_key must be a non-empty string"):
        read_structures(EMT_COPPER_SAMPLE_PATH, energy_key="")


def test_dataset(dataset, sample):
    assert len(dataset) == SAMPLE_STRUCTURES
    assert repr(dataset) == "AtomsDataset(300, 'emt_copper_sample.extxyz')"
    assert dataset.has_forces and dataset.elements == (29,)
    for position in (0, 150, 299):
        data, expected = dataset[position], sample[position]
        assert torch.equal(data.pos, expected.pos) and torch.equal(data.forces, expected.forces)
        assert torch.equal(data.energy, expected.energy) and data.idx.tolist() == [position]
    assert "y" not in dataset[0]


def test_cache_reuse_and_invalidation(tmp_path):
    path = tmp_path / "frames.extxyz"
    ase_io.write(path, _frames())
    root = tmp_path / "cache"
    first = AtomsDataset(path, root)
    assert len(first) == 4 and first.elements == (29, 79)
    cached = sorted(os.listdir(root / "processed"))
    (cache,) = [name for name in cached if name.startswith("frames.extxyz-")]

    # Same file and keys: the cache is loaded, not rebuilt.
    mtime = os.stat(root / "processed" / cache).st_mtime_ns
    again = AtomsDataset(path, root)
    assert os.stat(root / "processed" / cache).st_mtime_ns == mtime
    assert torch.equal(again[3].pos, first[3].pos)

    # Other keys: a new cache.
    with_y = AtomsDataset(path, root, properties=["charge_state"])
    assert with_y[2].y.tolist() == [[2.0]]
    assert len([n for n in os.listdir(root / "processed") if n.startswith("frames")]) == 2

    # A changed file: processed again.
    ase_io.write(path, _frames(2))
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changed = AtomsDataset(path, root)
    assert len(changed) == 3 and changed.elements == (29, 79)


def test_default_root(tmp_path, monkeypatch):
    monkeypatch.setenv("FLT3D_DATA", str(tmp_path / "data"))
    path = tmp_path / "frames.traj"
    ase_io.write(path, _frames(1))
    dataset = AtomsDataset(path)
    assert dataset.processed_dir == str(tmp_path / "data" / "atoms" / "processed")
    assert len(dataset) == 2


def test_split(dataset):
    train, val, test = dataset.split()
    assert (len(train), len(val), len(test)) == (240, 30, 30)
    everything = torch.cat([train, val, test])
    assert torch.equal(everything.sort().values, torch.arange(len(dataset)))
    assert all(part.dtype == torch.long for part in (train, val, test))
    again = dataset.split()
    assert all(torch.equal(a, b) for a, b in zip((train, val, test), again))
    other = dataset.split(seed=1)
    assert not torch.equal(other[0], train)
    train, val, test = dataset.split(val_fraction=0.0, test_fraction=0.5)
    assert (len(train), len(val), len(test)) == (150, 0, 150)
    with pytest.raises(ValueError, match="val_fraction must be a number in"):
        dataset.split(val_fraction=1.0)
    with pytest.raises(ValueError, match="must be below 1"):
        dataset.split(val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        dataset.split(seed=-1)


def test_split_tiny(tmp_path):
    path = tmp_path / "one.traj"
    ase_io.write(path, _frames(1)[:1])
    train, val, test = AtomsDataset(path, tmp_path).split(val_fraction=0.4, test_fraction=0.4)
    assert train.tolist() == [0] and val.numel() == test.numel() == 0


def test_fit_atomref(dataset):
    train, val, test = dataset.split()
    ref = dataset.fit_atomref(train)
    assert isinstance(ref, AtomRef) and set(ref.energies) == {29}
    energy = torch.cat([dataset[i].energy[0] for i in train.tolist()])
    natoms = torch.cat([dataset[i].natoms for i in train.tolist()]).double()
    # One element: e_Cu = sum(N E) / sum(N^2), the least-squares slope through the origin.
    expected = float((natoms * energy).sum() / (natoms**2).sum())
    assert ref.energies[29] == pytest.approx(expected, rel=1e-12)
    residual = (energy - expected * natoms) / natoms
    assert ref.mean == pytest.approx(float(residual.mean()), abs=1e-12)
    assert ref.std == pytest.approx(float(residual.std(unbiased=False)), rel=1e-9)
    assert 0 < ref.std < 0.2
    # Fitted on the training part only: another part gives another reference.
    assert dataset.fit_atomref(test).energies[29] != ref.energies[29]
    with pytest.raises(ValueError, match="indices must be positions in"):
        dataset.fit_atomref([0, 300])
    with pytest.raises(ValueError, match="indices is empty"):
        dataset.fit_atomref([])


def test_fit_atomref_two_elements(tmp_path):
    rng = np.random.default_rng(0)
    e_cu, e_au = -3.5, -1.25
    frames = []
    for _ in range(12):
        n_cu, n_au = int(rng.integers(1, 6)), int(rng.integers(0, 4))
        positions = 3.0 * np.arange(3 * (n_cu + n_au)).reshape(-1, 3)
        atoms = ase.Atoms("Cu" * n_cu + "Au" * n_au, positions=positions)
        atoms.info["energy"] = n_cu * e_cu + n_au * e_au + 0.01 * (n_cu + n_au) * rng.normal()
        frames.append(atoms)
    frames.append(ase.Atoms("Ag", info={"energy": -2.0}))
    path = tmp_path / "mixed.extxyz"
    ase_io.write(path, frames)
    dataset = AtomsDataset(path, tmp_path)
    assert dataset.elements == (29, 47, 79) and not dataset.has_forces
    with pytest.raises(ValueError, match=r"element\(s\) Ag \(Z=47\) occur in this dataset but"):
        dataset.fit_atomref(torch.arange(12))

    subset = dataset[:12]  # without the silver atom: every element is in the fit
    assert subset.elements == (29, 79)
    ref = subset.fit_atomref(torch.arange(12))
    assert set(ref.energies) == {29, 79}
    assert ref.energies[29] == pytest.approx(e_cu, abs=0.05)
    assert ref.energies[79] == pytest.approx(e_au, abs=0.05)
    assert abs(ref.mean) < 0.01 and ref.std < 0.03

    full = dataset.fit_atomref(torch.arange(13))
    assert full.energies[47] == pytest.approx(-2.0, abs=1e-9)  # alone in its structure
    assert full.energies[29] == pytest.approx(ref.energies[29], abs=1e-9)


def test_database_query(tmp_path):
    path = str(tmp_path / "frames.db")
    ase_io.write(path, _frames())
    selected = read_structures(path, index="natoms>3")
    assert [int(d.natoms) for d in selected] == [4, 5]
    assert [int(d.idx) for d in selected] == [0, 1]  # positions among the selected rows
    with pytest.raises(ValueError, match=r"the query index='natoms>9' selects no structure"):
        read_structures(path, index="natoms>9")
