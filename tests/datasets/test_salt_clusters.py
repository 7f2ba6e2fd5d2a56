"""The shipped salt-cluster sample: layout, metadata, and labels recomputed with OpenMM."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from flt3d.datasets import SALT_CLUSTERS_SAMPLE_PATH, read_structures

ase_io = pytest.importorskip("ase.io")

SAMPLE_STRUCTURES = 100
SAMPLE_ATOMS = 22_152
PROPERTIES = ["charge", "n_na", "n_cl", "run", "md_step"]
EV_PER_KJ_MOL = 1e3 / (1.602176634e-19 * 6.02214076e23)
SCRIPT = Path(__file__).resolve().parents[2] / "datasets" / "make_salt_clusters.py"


@pytest.fixture(scope="module")
def sample():
    return read_structures(SALT_CLUSTERS_SAMPLE_PATH, properties=PROPERTIES)


@pytest.fixture(scope="module")
def openmm_label():
    """``label(atoms) -> (energy eV, forces eV/Å)``: Joung-Cheatham ions, NoCutoff, float64."""
    openmm = pytest.importorskip("openmm")
    from openmm import app, unit

    force_field = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")

    def topology_of(numbers):
        topology = app.Topology()
        chain = topology.addChain()
        for z in numbers.tolist():
            name = {11: "NA", 17: "CL"}[z]
            element = app.element.Element.getByAtomicNumber(z)
            topology.addAtom(name, element, topology.addResidue(name, chain))
        return topology

    contexts = {}

    def label(atoms, positions=None):
        key = atoms.numbers.tobytes()
        if key not in contexts:
            system = force_field.createSystem(
                topology_of(atoms.numbers), nonbondedMethod=app.NoCutoff, constraints=None
            )
            platform = openmm.Platform.getPlatformByName("Reference")
            contexts[key] = openmm.Context(system, openmm.VerletIntegrator(0.001), platform)
        context = contexts[key]
        positions = atoms.positions if positions is None else positions
        context.setPositions(positions / 10.0 * unit.nanometer)
        state = context.getState(getEnergy=True, getForces=True)
        energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        forces = state.getForces(asNumpy=True).value_in_unit(
            unit.kilojoule_per_mole / unit.nanometer
        )
        return energy * EV_PER_KJ_MOL, np.asarray(forces) * EV_PER_KJ_MOL / 10.0

    return label


def test_sample_counts_shapes(sample):
    assert os.path.getsize(SALT_CLUSTERS_SAMPLE_PATH) <= 2.5 * 2**20
    assert len(sample) == SAMPLE_STRUCTURES
    assert sum(int(data.natoms) for data in sample) == SAMPLE_ATOMS
    elements = set()
    for position, data in enumerate(sample):
        n = data.num_nodes
        assert 60 <= n <= 700
        elements |= set(data.z.tolist())
        assert data.pos.dtype == torch.float32 and data.pos.shape == (n, 3)
        assert data.forces.dtype == torch.float32 and data.forces.shape == (n, 3)
        assert data.energy.dtype == torch.float64 and data.energy.shape == (1, 1)
        assert not data.pbc.any() and (data.cell == 0).all()
        assert data.idx.tolist() == [position]
        assert data.y.shape == (1, len(PROPERTIES))
        assert torch.isfinite(data.forces).all()
        # An isolated cluster: no external field, so the forces sum to zero.
        assert data.forces.double().sum(dim=0).abs().max() < 1e-5
    assert elements == {11, 17}
    # Ionic clusters bind strongly: about -3.6 to -3.9 eV/atom, the larger the deeper.
    per_atom = torch.cat([data.energy[0] / data.num_nodes for data in sample])
    assert (per_atom < -3.5).all() and (per_atom > -4.0).all()
    # Clusters reach beyond the 10-15 Å receptive field of a local model.
    widths = [torch.cdist(data.pos, data.pos).max() for data in sample]
    assert min(widths) > 10 and max(widths) > 30


def test_sample_metadata(sample):
    charges = []
    for data in sample:
        charge, n_na, n_cl, _, md_step = data.y[0].tolist()
        assert charge == n_na - n_cl
        assert data.z.tolist() == [11] * int(n_na) + [17] * int(n_cl)
        assert md_step in (1525, 1550, 1575, 1600)
        charges.append(int(charge))
    assert set(charges) == set(range(-4, 5))
    runs = torch.cat([data.y[:, 3] for data in sample]).long()
    assert torch.bincount(runs).tolist() == [4] * (SAMPLE_STRUCTURES // 4)
    # The same number of runs at each |q| (shuffled blocks of 0..4).
    magnitudes = torch.tensor(charges[::4]).abs()
    assert torch.bincount(magnitudes).tolist() == [SAMPLE_STRUCTURES // 20] * 5


@pytest.mark.parametrize("position", [4, 27])
def test_sample_labels_are_openmm(sample, openmm_label, position):
    atoms = ase_io.read(SALT_CLUSTERS_SAMPLE_PATH, index=position)
    data = sample[position]
    assert len(atoms) < 100 and atoms.numbers.tolist() == data.z.tolist()
    energy, forces = openmm_label(atoms)
    assert float(data.energy) == pytest.approx(energy, abs=1e-8)
    assert atoms.get_potential_energy() == pytest.approx(energy, abs=1e-8)
    np.testing.assert_allclose(atoms.get_forces(), forces, rtol=0, atol=1e-7)
    torch.testing.assert_close(data.forces, torch.from_numpy(forces).float(), atol=1e-6, rtol=0)


def test_sample_forces_are_energy_gradient(openmm_label):
    atoms = ase_io.read(SALT_CLUSTERS_SAMPLE_PATH, index=7)
    assert atoms.info["charge"] == -4
    _, forces = openmm_label(atoms)
    h = 1e-4  # Å
    # Two sodiums and the last chloride, along x, y and z.
    for atom, axis in ((0, 0), (5, 1), (len(atoms) - 1, 2)):
        shifted = []
        for sign in (1, -1):
            positions = atoms.positions.copy()
            positions[atom, axis] += sign * h
            shifted.append(openmm_label(atoms, positions)[0])
        gradient = (shifted[0] - shifted[1]) / (2 * h)
        assert -gradient == pytest.approx(forces[atom, axis], abs=1e-6)
        assert -gradient == pytest.approx(atoms.get_forces()[atom, axis], abs=1e-6)


def test_generator_reproducible(tmp_path, capsys):
    pytest.importorskip("openmm")
    args = ["--structures", "3", "--min-atoms", "20", "--max-atoms", "30", "--seed", "0"]
    args += ["--diagnostic-structures", "2"]
    first, second = tmp_path / "first.extxyz", tmp_path / "second.extxyz"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--output", str(first), "--diagnostic-json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OPENMM_CPU_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The same seed through main() in this process writes the same bytes as the subprocess.
    spec = importlib.util.spec_from_file_location("make_salt_clusters", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main([*args, "--output", str(second)])
    assert "sha256" in capsys.readouterr().out
    assert first.read_bytes() == second.read_bytes()

    frames = ase_io.read(first, index=":")
    assert len(frames) == 3 and all(len(atoms) <= 30 for atoms in frames)
    for atoms in frames:
        info = atoms.info
        assert info["charge"] == info["n_na"] - info["n_cl"] and info["run"] == 0
        assert atoms.numbers.tolist() == [11] * info["n_na"] + [17] * info["n_cl"]
    assert [atoms.info["md_step"] for atoms in frames] == [1525, 1550, 1575]
    diagnostic = json.loads((tmp_path / "first.long_range.json").read_text())
    assert diagnostic["cutoffs_A"] == [5.0, 10.0, 15.0] and len(diagnostic["frames"]) == 2
    plain = [diagnostic[f"plain_{c}A"]["all"]["force_relative"] for c in (5, 10, 15)]
    assert 0 < plain[0] < 1 and plain[0] > plain[1] >= plain[2] >= 0
    assert 0 < diagnostic["shifted_force_5A"]["all"]["force_relative"] < 1
