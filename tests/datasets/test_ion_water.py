"""The shipped ion-water sample: layout, metadata, and labels recomputed with OpenMM."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from flt3d.datasets import ION_WATER_SAMPLE_PATH, read_structures

ase_io = pytest.importorskip("ase.io")

SAMPLE_STRUCTURES = 116
SAMPLE_ATOMS = 18_536
PROPERTIES = ["charge", "n_water", "n_na", "n_cl", "run"]
EV_PER_KJ_MOL = 1e3 / (1.602176634e-19 * 6.02214076e23)
SCRIPT = Path(__file__).resolve().parents[2] / "datasets" / "make_ion_water.py"


@pytest.fixture(scope="module")
def sample():
    return read_structures(ION_WATER_SAMPLE_PATH, properties=PROPERTIES)


@pytest.fixture(scope="module")
def openmm_label():
    """``label(atoms) -> (energy eV, forces eV/Å)``: Amber14/TIP3P, flexible, NoCutoff, float64."""
    openmm = pytest.importorskip("openmm")
    from openmm import app, unit

    force_field = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")

    def topology_of(numbers):
        topology = app.Topology()
        chain = topology.addChain()
        k = 0
        while k < len(numbers):
            if numbers[k : k + 3].tolist() == [8, 1, 1]:
                residue = topology.addResidue("HOH", chain)
                o = topology.addAtom("O", app.element.oxygen, residue)
                for name in ("H1", "H2"):
                    topology.addBond(o, topology.addAtom(name, app.element.hydrogen, residue))
                k += 3
            else:
                name = {11: "NA", 17: "CL"}[int(numbers[k])]
                element = app.element.Element.getByAtomicNumber(int(numbers[k]))
                topology.addAtom(name, element, topology.addResidue(name, chain))
                k += 1
        return topology

    contexts = {}

    def label(atoms, positions=None):
        key = atoms.numbers.tobytes()
        if key not in contexts:
            system = force_field.createSystem(
                topology_of(atoms.numbers),
                nonbondedMethod=app.NoCutoff,
                constraints=None,
                rigidWater=False,
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
    assert os.path.getsize(ION_WATER_SAMPLE_PATH) <= 2 * 2**20
    assert len(sample) == SAMPLE_STRUCTURES
    assert sum(int(data.natoms) for data in sample) == SAMPLE_ATOMS
    elements = set()
    for position, data in enumerate(sample):
        n = data.num_nodes
        assert 90 <= n <= 300
        elements |= set(data.z.tolist())
        assert data.pos.dtype == torch.float32 and data.pos.shape == (n, 3)
        assert data.forces.dtype == torch.float32 and data.forces.shape == (n, 3)
        assert data.energy.dtype == torch.float64 and data.energy.shape == (1, 1)
        assert not data.pbc.any() and (data.cell == 0).all()
        assert data.idx.tolist() == [position]
        assert data.y.shape == (1, len(PROPERTIES))
        # An isolated droplet: no external field, so the forces sum to zero.
        assert data.forces.double().sum(dim=0).abs().max() < 1e-5
    assert elements == {1, 8, 11, 17}
    # Water-ion droplets bind: negative energies of order -0.15 to -0.25 eV/atom.
    per_atom = torch.cat([data.energy[0] / data.num_nodes for data in sample])
    assert (per_atom < -0.1).all() and (per_atom > -0.3).all()


def test_sample_metadata(sample):
    charges = set()
    for data in sample:
        charge, n_water, n_na, n_cl, _ = data.y[0].tolist()
        assert charge == n_na - n_cl
        assert n_na + n_cl >= 2 and n_water >= 29
        expected = [8, 1, 1] * int(n_water) + [11] * int(n_na) + [17] * int(n_cl)
        assert data.z.tolist() == expected
        charges.add(int(charge))
    assert charges == set(range(-3, 4))
    runs = torch.cat([data.y[:, 4] for data in sample]).long()
    assert torch.bincount(runs).tolist() == [4] * (SAMPLE_STRUCTURES // 4)


@pytest.mark.parametrize("position", [0, SAMPLE_STRUCTURES - 1])
def test_sample_labels_are_openmm(sample, openmm_label, position):
    atoms = ase_io.read(ION_WATER_SAMPLE_PATH, index=position)
    data = sample[position]
    assert atoms.numbers.tolist() == data.z.tolist()
    energy, forces = openmm_label(atoms)
    assert float(data.energy) == pytest.approx(energy, abs=1e-8)
    assert atoms.get_potential_energy() == pytest.approx(energy, abs=1e-8)
    np.testing.assert_allclose(atoms.get_forces(), forces, rtol=0, atol=1e-7)
    torch.testing.assert_close(data.forces, torch.from_numpy(forces).float(), atol=1e-6, rtol=0)


def test_sample_forces_are_energy_gradient(openmm_label):
    atoms = ase_io.read(ION_WATER_SAMPLE_PATH, index=3)
    _, forces = openmm_label(atoms)
    h = 1e-4  # Å
    # An oxygen, a hydrogen and the last ion, along x, y and z.
    for atom, axis in ((0, 0), (4, 1), (len(atoms) - 1, 2)):
        shifted = []
        for sign in (1, -1):
            positions = atoms.positions.copy()
            positions[atom, axis] += sign * h
            shifted.append(openmm_label(atoms, positions)[0])
        gradient = (shifted[0] - shifted[1]) / (2 * h)
        assert -gradient == pytest.approx(forces[atom, axis], abs=1e-6)
        assert -gradient == pytest.approx(atoms.get_forces()[atom, axis], abs=1e-6)


def test_generator_smoke(tmp_path):
    pytest.importorskip("openmm")
    output = tmp_path / "drops.extxyz"
    args = ["--structures", "4", "--min-atoms", "60", "--max-atoms", "70", "--seed", "3"]
    args += ["--output", str(output), "--diagnostic-structures", "2", "--diagnostic-json"]
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OPENMM_CPU_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    frames = ase_io.read(output, index=":")
    assert len(frames) == 4 and {len(atoms) for atoms in frames} <= set(range(58, 71))
    for atoms in frames:
        info = atoms.info
        assert info["charge"] == info["n_na"] - info["n_cl"] and info["run"] == 0
        assert len(atoms) == 3 * info["n_water"] + info["n_na"] + info["n_cl"]
    diagnostic = json.loads((tmp_path / "drops.long_range.json").read_text())
    assert diagnostic["cutoff_A"] == 5.0 and len(diagnostic["frames"]) == 2
    for method in ("reaction_field", "plain", "shifted_force"):
        assert 0 < diagnostic[method]["all"]["force_relative"] < 1
