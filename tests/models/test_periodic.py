"""Periodic cells for local FLTNet: images, extensivity, forces and stress."""

import numpy as np
import pytest
import torch
from ase.build import bulk, fcc111
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

from flt3d.calculators import FLTCalculator
from flt3d.models import FLTNet
from flt3d.nn import set_attention


def local_copper(attention: str = "linear") -> FLTNet:
    torch.manual_seed(0)
    model = FLTNet(
        hidden_channels=16, num_layers=2, heads=2, target="energy", elements=("Cu",),
        far_attention=False, mean=-3.0, std=0.3,
    ).double()  # fmt: skip
    return set_attention(model, attention).eval()


def crystal(seed: int = 0):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))  # 32 atoms, 7.22 Å cell
    atoms.rattle(0.05, seed=seed)
    return atoms


def tensors(atoms):
    return (
        torch.as_tensor(atoms.numbers),
        torch.as_tensor(atoms.positions, dtype=torch.float64),
        torch.as_tensor(np.asarray(atoms.cell), dtype=torch.float64),
        torch.as_tensor(atoms.pbc),
    )


@pytest.mark.parametrize("attention", ["linear", "exact"])
def test_images_wrapping_and_supercells(attention):
    model = local_copper(attention)
    atoms = crystal()
    z, pos, cell, pbc = tensors(atoms)
    energy, forces = model.energy_and_forces(z, pos, cell=cell, pbc=pbc)
    moved = pos.clone()
    moved[0] += cell[0] - 2 * cell[2]  # the same crystal, one atom in another image
    e_moved, f_moved = model.energy_and_forces(z, moved, cell=cell, pbc=pbc)
    assert torch.allclose(e_moved, energy, atol=1e-10) and torch.allclose(f_moved, forces, atol=1e-10)
    big = atoms.repeat((2, 1, 1))
    zb, posb, cellb, pbcb = tensors(big)
    e_big, f_big = model.energy_and_forces(zb, posb, cell=cellb, pbc=pbcb)
    assert torch.allclose(e_big, 2 * energy, rtol=1e-10)  # a local model is extensive
    assert torch.allclose(f_big, forces.repeat(2, 1), atol=1e-10)
    # a periodic crystal is not the open cluster of its atoms
    assert not torch.allclose(model(z, pos), energy, atol=1e-3)


def test_exact_and_linear_are_one_function_in_a_cell():
    atoms = crystal(seed=1)
    z, pos, cell, pbc = tensors(atoms)
    e_lin = local_copper("linear").energy_and_forces(z, pos, cell=cell, pbc=pbc)
    e_ex = local_copper("exact").energy_and_forces(z, pos, cell=cell, pbc=pbc)
    for a, b in zip(e_lin, e_ex):
        assert torch.allclose(a, b, atol=1e-10)


def test_forces_and_stress_equal_finite_differences():
    atoms = crystal(seed=2)
    atoms.set_cell(atoms.cell @ np.array([[1.0, 0.03, 0.0], [0.0, 0.98, 0.02], [0.01, 0.0, 1.02]]),
                   scale_atoms=True)  # fmt: skip
    atoms.calc = FLTCalculator(local_copper())
    forces, stress = atoms.get_forces(), atoms.get_stress()
    numeric = calculate_numerical_forces(atoms, eps=1e-5, iatoms=[0, 13, 31])
    assert np.abs(numeric - forces[[0, 13, 31]]).max() <= 1e-6 * np.abs(forces).max()
    numeric_stress = calculate_numerical_stress(atoms, eps=1e-6)
    assert np.abs(stress).max() > 1e-4
    assert np.abs(numeric_stress - stress).max() <= 1e-5 * np.abs(stress).max() + 1e-10


def test_slabs_are_periodic_along_two_axes():
    slab = fcc111("Cu", size=(3, 3, 3), vacuum=6.0)  # pbc (True, True, False)
    slab.rattle(0.03, seed=3)
    slab.calc = FLTCalculator(local_copper())
    forces = slab.get_forces()
    numeric = calculate_numerical_forces(slab, eps=1e-5, iatoms=[0, 13, 26])
    assert np.abs(numeric - forces[[0, 13, 26]]).max() <= 1e-6 * np.abs(forces).max()


def test_models_that_see_past_the_cutoff_refuse_cells():
    atoms = crystal()
    z, pos, cell, pbc = tensors(atoms)
    model = FLTNet(hidden_channels=8, num_layers=1, heads=2, target="energy", elements=("Cu",))
    assert not model.local
    with pytest.raises(ValueError, match="periodic cells need a local FLTNet"):
        model(z, pos.float(), cell=cell.float(), pbc=pbc)
    atoms.calc = FLTCalculator(model)
    with pytest.raises(ValueError, match="local"):
        atoms.get_potential_energy()
    with pytest.raises(ValueError, match="stress needs a periodic cell"):
        local_copper().energy_and_forces(z, pos, stress=True)
