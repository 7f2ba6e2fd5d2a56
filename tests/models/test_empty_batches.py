"""Empty batches, graphs without atoms, unsorted and non-contiguous batch vectors, num_graphs.

Every public layer takes zero atoms and returns empty per-atom outputs; the models and heads
give one row per graph, ``num_graphs`` of them when asked, and a graph without atoms gets the
head's empty value (0 for sums, the target's mean for intensive properties); a point cloud
without points is a ``ValueError``.
"""

from __future__ import annotations

import pytest
import torch

from flt3d.atomistic import (
    DipoleHead,
    ElectronicSpatialExtentHead,
    ExtensiveHead,
    IntensiveHead,
)
from flt3d.models import FLTNet, PointCloudClassifier
from flt3d.nn import (
    FLTAttention,
    FLTBlock,
    FLTConv,
    LatentCharges,
    SpectralFilter,
)

NONE = torch.zeros(0, dtype=torch.long)


@pytest.mark.parametrize("attention", ["exact", "linear"])
@pytest.mark.parametrize("cutoff", [None, 3.0])
def test_layers_take_zero_atoms(attention, cutoff):
    pos = torch.zeros(0, 3)
    attn = FLTAttention(2, 4, 3, attention=attention, cutoff=cutoff)
    q = torch.zeros(0, 2, 4)
    assert attn(q, q, q, pos, NONE).shape == (0, 2, 4)
    conv = FLTConv(8, 8, heads=2, attention=attention, cutoff=cutoff, spectral_filter=True)
    assert conv(torch.zeros(0, 8), pos, NONE).shape == (0, 8)
    assert conv(torch.zeros(0, 8), pos).shape == (0, 8)
    block = FLTBlock(8, heads=2, attention=attention, cutoff=cutoff)
    assert block(torch.zeros(0, 8), pos, NONE).shape == (0, 8)
    filt = SpectralFilter(2, 4, 3, attention=attention, cutoff=cutoff)
    assert filt(q, pos, NONE).shape == (0, 2, 4)


@pytest.mark.parametrize("attention", ["exact", "linear"])
def test_fltnet_zero_atoms_and_num_graphs(attention):
    model = FLTNet(hidden_channels=16, num_layers=1, heads=2, attention=attention).eval()
    pos = torch.zeros(0, 3)
    assert model(NONE, pos, NONE).shape == (0, 1)
    energy = model(NONE, pos, NONE, num_graphs=3)
    assert torch.equal(energy, torch.zeros(3, 1))  # no atoms, no energy
    energy, forces = model.energy_and_forces(NONE, pos, NONE, num_graphs=2)
    assert torch.equal(energy, torch.zeros(2, 1)) and forces.shape == (0, 3)
    charges = LatentCharges(16, attention=attention)
    assert torch.equal(charges(torch.zeros(0, 16), pos, NONE, num_graphs=2), torch.zeros(2, 1))


def _molecules(gen):
    z = torch.tensor([6, 1, 1, 1, 8, 1, 7, 1, 1])
    pos = 1.2 * torch.randn(9, 3, generator=gen)
    batch = torch.tensor([0, 0, 0, 0, 2, 2, 4, 4, 4])  # graphs 1 and 3 have no atoms
    return z, pos, batch


@pytest.mark.parametrize("attention", ["exact", "linear"])
@pytest.mark.parametrize(
    "target, empty", [("gap", "mean"), ("U0", "zero"), ("mu", "zero"), ("r2", "zero")]
)
def test_graphs_without_atoms_get_the_heads_empty_value(attention, target, empty):
    gen = torch.Generator().manual_seed(0)
    model = FLTNet(
        hidden_channels=16, num_layers=1, heads=2, attention=attention, target=target, mean=3.5
    ).eval()
    z, pos, batch = _molecules(gen)
    y = model(z, pos, batch, num_graphs=6).detach()
    assert y.shape == (6, 1)
    expected = 3.5 if empty == "mean" else 0.0
    for g in (1, 3, 5):
        assert float(y[g]) == pytest.approx(expected, abs=1e-6)  # the dipole's norm floor
    # the graphs with atoms are the same as when each is predicted alone
    for g in (0, 2, 4):
        alone = model(z[batch == g], pos[batch == g])
        assert torch.allclose(y[g], alone[0], atol=1e-5)


@pytest.mark.parametrize("attention", ["exact", "linear"])
def test_unsorted_batch_vector_is_a_permutation(attention):
    gen = torch.Generator().manual_seed(1)
    model = FLTNet(hidden_channels=16, num_layers=2, heads=2, attention=attention).eval()
    z, pos, batch = _molecules(gen)
    perm = torch.randperm(9, generator=gen)
    assert torch.allclose(
        model(z[perm], pos[perm], batch[perm], num_graphs=5),
        model(z, pos, batch, num_graphs=5),
        atol=1e-5,
    )


@pytest.mark.parametrize(
    "head", [ExtensiveHead, IntensiveHead, DipoleHead, ElectronicSpatialExtentHead]
)
def test_heads_without_atoms(head):
    module = head(8, mean=2.0)
    out = module(torch.zeros(0, 8), NONE, torch.zeros(0, 3), NONE, num_graphs=2)
    expected = 2.0 if head is IntensiveHead else 0.0
    assert torch.allclose(out, torch.full((2, 1), expected), atol=1e-6)


def test_num_graphs_is_checked():
    model = FLTNet(hidden_channels=16, num_layers=1, heads=2)
    z, pos, batch = _molecules(torch.Generator().manual_seed(2))
    with pytest.raises(ValueError, match="graph id 4, but num_graphs=3"):
        model(z, pos, batch, num_graphs=3)
    with pytest.raises(ValueError, match="num_graphs must be a non-negative integer"):
        model(z, pos, batch, num_graphs=-1)
    with pytest.raises(ValueError, match="batch=None is one graph"):
        model(z, pos, num_graphs=2)


def test_point_clouds_empty_batch_and_clouds_without_points():
    model = PointCloudClassifier(3, hidden_channels=8, num_layers=1, heads=2)
    assert model(torch.zeros(0, 3), torch.zeros(0, 3), NONE).shape == (0, 3)
    x, pos = torch.randn(6, 3), torch.randn(6, 3)
    batch = torch.tensor([0, 0, 0, 2, 2, 2])
    with pytest.raises(ValueError, match=r"clouds \[1\] have no points"):
        model(x, pos, batch)
    with pytest.raises(ValueError, match=r"clouds \[3\] have no points"):
        model(x, pos, torch.tensor([0, 0, 1, 1, 2, 2]), num_graphs=4)
    assert model(x, pos, torch.tensor([0, 0, 1, 1, 2, 2]), num_graphs=3).shape == (3, 3)
