"""FLTCalculator: ASE's view of FLTNet energies and forces, in MD and relaxations."""

import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.calculators.fd import calculate_numerical_forces
from ase.cluster import Icosahedron
from ase.md.velocitydistribution import Stationary, thermalize_momenta
from ase.md.verlet import VelocityVerlet

from flt3d.calculators import FLTCalculator
from flt3d.models import FLTNet
from flt3d.nn import set_attention


def copper_model(attention: str = "exact") -> FLTNet:
    torch.manual_seed(0)
    model = FLTNet(
        hidden_channels=16,
        num_layers=2,
        heads=2,
        target="energy",
        elements=("Cu",),
        num_features=16,
        mean=-3.5,
        std=0.2,
    )
    return set_attention(model, attention)


def distorted_cluster(seed: int = 0) -> Atoms:
    atoms = Icosahedron("Cu", 2)  # 13 atoms
    atoms.rattle(0.05, seed=seed)
    return atoms


@pytest.mark.parametrize("attention", ["exact", "linear"])
def test_energy_and_forces_are_the_models(attention):
    model = copper_model(attention)
    atoms = distorted_cluster()
    atoms.calc = FLTCalculator(model)
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    z = torch.as_tensor(atoms.numbers)
    pos = torch.as_tensor(atoms.positions, dtype=torch.float64)
    ref_e, ref_f = model.double().eval().energy_and_forces(z, pos)
    assert energy == pytest.approx(float(ref_e), abs=1e-10)
    np.testing.assert_allclose(forces, ref_f.numpy(), atol=1e-10)
    atoms_checked = [0, 5, 12]
    numeric = calculate_numerical_forces(atoms, eps=1e-5, iatoms=atoms_checked)
    error = np.abs(numeric - forces[atoms_checked]).max()
    assert error <= 1e-6 * np.abs(forces).max(), error


def test_the_model_passed_in_is_left_as_it_was():
    model = copper_model().train()
    FLTCalculator(model)
    assert model.training and next(model.parameters()).dtype == torch.float32


def test_nve_conserves_energy():
    """Velocity Verlet, 0.5 fs: forces are the exact gradient, so the total energy only
    wanders by the integrator's O(dt^2) error."""
    atoms = distorted_cluster(seed=1)
    atoms.calc = FLTCalculator(copper_model())
    thermalize_momenta(atoms, temperature_K=300, rng=np.random.default_rng(0))
    Stationary(atoms)
    start = atoms.get_total_energy()
    totals = []
    dyn = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    dyn.attach(lambda: totals.append(atoms.get_total_energy()), interval=10)
    dyn.run(300)
    drift = np.abs(np.array(totals) - start).max() / len(atoms)
    moved = np.abs(atoms.positions - distorted_cluster(seed=1).positions).max()
    assert moved > 0.01  # the atoms did move
    assert drift <= 1e-3, drift  # eV per atom


def test_bad_atoms_give_clear_errors():
    calc = FLTCalculator(copper_model())
    water = Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    water.calc = calc
    with pytest.raises(ValueError, match="not in the model's elements"):
        water.get_potential_energy()
    periodic = distorted_cluster()
    periodic.cell = [10, 10, 10]
    periodic.pbc = True
    periodic.calc = FLTCalculator(copper_model())
    with pytest.raises(ValueError, match="periodic"):
        periodic.get_forces()
    with pytest.raises(ValueError, match="energy"):
        FLTCalculator(FLTNet(hidden_channels=8, num_layers=1, heads=2, target="gap"))
    with pytest.raises(ValueError, match="dtype"):
        FLTCalculator(copper_model(), dtype="float16")
