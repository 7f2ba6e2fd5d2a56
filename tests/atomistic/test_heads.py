import pytest
import torch
from e3nn.o3 import rand_matrix
from torch import nn

from flt3d.atomistic import (
    BOHR2_PER_ANGSTROM2,
    DEBYE_PER_E_ANGSTROM,
    MAX_Z,
    DipoleHead,
    ElectronicSpatialExtentHead,
    ExtensiveHead,
    IntensiveHead,
    atomic_masses,
    make_head,
)

C = 8
QM9_Z = torch.tensor([1, 6, 7, 8, 9])


def molecules(sizes=(3, 5, 4), *, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    n = sum(sizes)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    z = QM9_Z[torch.randint(0, 5, (n,), generator=gen)]
    pos = 1.5 * torch.randn(n, 3, generator=gen, dtype=dtype)
    h = torch.randn(n, C, generator=gen, dtype=dtype)
    return h, z, pos, batch


def zero_mlp(head):
    last = head.mlp[-1]
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return head


ALL_HEADS = [ExtensiveHead, IntensiveHead, DipoleHead, ElectronicSpatialExtentHead]


@pytest.mark.parametrize("cls", ALL_HEADS)
def test_shapes_dtype_and_repr(cls):
    head = cls(C).double()
    h, z, pos, batch = molecules()
    out = head(h, z, pos, batch)
    assert out.shape == (3, 1) and out.dtype == torch.float64
    assert head(h[:3], z[:3], pos[:3]).shape == (1, 1)
    # an empty trailing graph still gets a row
    assert head(h, z, pos, batch, num_graphs=4).shape == (4, 1)
    assert repr(head).startswith(f"{cls.__name__}({C}")


@pytest.mark.parametrize("cls", [ExtensiveHead, IntensiveHead])
def test_several_outputs(cls):
    head = cls(C, out_channels=2, mean=[1.0, -1.0], std=[2.0, 3.0]).double()
    h, z, pos, batch = molecules()
    assert head(h, z, pos, batch).shape == (3, 2)


def test_extensive_is_a_sum_of_references_and_means():
    head = zero_mlp(ExtensiveHead(C, mean=0.5, atomref={"H": -1.0, 6: -10.0, "O": -100.0}))
    z = torch.tensor([6, 1, 1, 8, 1, 1])
    batch = torch.tensor([0, 0, 0, 1, 1, 1])
    out = head(torch.randn(6, C), z, torch.randn(6, 3), batch)
    assert torch.allclose(out.flatten(), torch.tensor([-12.0 + 1.5, -102.0 + 1.5]))


def test_extensive_scales_per_atom_outputs_by_std():
    h, z, pos, batch = molecules()
    head = ExtensiveHead(C, mean=0.25, std=3.0).double()
    o = head.mlp(h)
    expected = torch.zeros(3, 1, dtype=torch.float64).index_add_(0, batch, 3.0 * o + 0.25)
    assert torch.allclose(head(h, z, pos, batch), expected)


def test_intensive_is_mean_then_scale_and_shift():
    h, z, pos, batch = molecules()
    head = IntensiveHead(C, mean=7.0, std=2.0).double()
    o = head.mlp(h)
    counts = torch.bincount(batch).unsqueeze(-1)
    expected = torch.zeros(3, 1, dtype=torch.float64).index_add_(0, batch, o) / counts * 2 + 7
    assert torch.allclose(head(h, z, pos, batch), expected)


def brute_force_dipole(q, z, pos):
    masses = {1: 1.008, 6: 12.011, 7: 14.007, 8: 15.999, 9: 18.998}
    m = torch.tensor([masses[int(a)] for a in z], dtype=pos.dtype)
    rc = (m[:, None] * pos).sum(0) / m.sum()
    q = q - q.mean()
    vector = sum(q[i] * (pos[i] - rc) for i in range(len(z)))
    return DEBYE_PER_E_ANGSTROM * vector.norm()


def test_dipole_matches_brute_force_sum():
    h, z, pos, batch = molecules()
    head = DipoleHead(C, atomref={"O": -0.4, "H": 0.2}).double()
    q = head.atomwise(h, z).flatten()
    out = head(h, z, pos, batch).flatten()
    for g in range(3):
        sel = batch == g
        assert torch.allclose(out[g], brute_force_dipole(q[sel], z[sel], pos[sel]))


def test_dipole_charges_are_neutral_and_centre_irrelevant():
    h, z, pos, batch = molecules()
    head = DipoleHead(C, mean=3.0, std=2.0).double()
    q = head.charges(head.atomwise(h, z), batch, 3)
    totals = torch.zeros(3, 1, dtype=torch.float64).index_add_(0, batch, q)
    assert totals.abs().max() < 1e-12
    assert q.abs().max() > 1e-3  # the test above is not vacuous
    outs = []
    for center in DipoleHead.centers:
        other = DipoleHead(C, center=center).double()
        other.load_state_dict(head.state_dict())
        outs.append(other(h, z, pos, batch))
    assert all(torch.allclose(outs[0], o) for o in outs[1:])


def test_spatial_extent_matches_brute_force():
    h, z, pos, batch = molecules()
    head = ElectronicSpatialExtentHead(C).double()
    w = torch.nn.functional.softplus(head.atomwise(h, z)).flatten()
    masses = atomic_masses().double()[z]
    out = head(h, z, pos, batch).flatten()
    for g in range(3):
        sel = batch == g
        rc = (masses[sel, None] * pos[sel]).sum(0) / masses[sel].sum()
        r2 = (pos[sel] - rc).pow(2).sum(-1)
        assert torch.allclose(out[g], BOHR2_PER_ANGSTROM2 * (w[sel] * r2).sum())
    assert (out > 0).all()


@pytest.mark.parametrize("cls", [DipoleHead, ElectronicSpatialExtentHead])
@pytest.mark.parametrize("center", ["mass", "charge", "geometry"])
def test_rotation_and_translation_invariance(cls, center):
    torch.manual_seed(0)
    h, z, pos, batch = molecules()
    head = cls(C, center=center).double()
    out = head(h, z, pos, batch)
    rotations = rand_matrix(3, dtype=torch.float64)
    shifts = 10 * torch.randn(3, 3, dtype=torch.float64)
    moved = torch.einsum("nij,nj->ni", rotations[batch], pos) + shifts[batch]
    assert not torch.allclose(moved, pos)
    assert torch.allclose(head(h, z, moved, batch), out, rtol=1e-10, atol=1e-10)


def test_invariance_in_float32():
    h, z, pos, batch = molecules(dtype=torch.float32)
    head = DipoleHead(C)
    rotation = rand_matrix(dtype=torch.float32)
    moved = pos @ rotation.T + torch.tensor([100.0, -50.0, 20.0])
    assert torch.allclose(head(h, z, moved, batch), head(h, z, pos, batch), atol=1e-3)


@pytest.mark.parametrize("cls", ALL_HEADS)
def test_statistics_are_buffers_in_state_dict(cls):
    head = cls(C)
    head.set_statistics(2.0, 3.0, {"C": 1.5})
    state = head.state_dict()
    assert {"mean", "std", "atomref"} <= set(state)
    assert state["atomref"].shape == (MAX_Z + 1, 1) and state["atomref"][6, 0] == 1.5
    assert "masses" not in state
    fresh = cls(C)
    fresh.load_state_dict(state)
    h, z, pos, batch = molecules(dtype=torch.float32)
    assert torch.equal(fresh(h, z, pos, batch), head(h, z, pos, batch))
    mean, std, atomref = fresh.statistics()
    assert float(mean) == 2.0 and float(std) == 3.0 and float(atomref[6, 0]) == 1.5


def test_atomref_formats_agree():
    by_dict = ExtensiveHead(C, atomref={"H": -0.5, 8: -75.0}).atomref
    table = torch.zeros(10)
    table[1], table[8] = -0.5, -75.0
    assert torch.equal(ExtensiveHead(C, atomref=table).atomref, by_dict)
    assert torch.equal(ExtensiveHead(C, atomref=table.tolist()).atomref, by_dict)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="std"):
        ExtensiveHead(C, std=0.0)
    with pytest.raises(ValueError, match="mean"):
        ExtensiveHead(C, out_channels=2, mean=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="out_channels"):
        DipoleHead(C, out_channels=3)
    with pytest.raises(ValueError, match="center"):
        ElectronicSpatialExtentHead(C, center="nucleus")
    with pytest.raises(ValueError, match="atomref"):
        ExtensiveHead(C, atomref=torch.zeros(200))
    with pytest.raises(ValueError, match="head"):
        make_head("energy", C)
    head = ExtensiveHead(C)
    h, z, pos, batch = molecules(dtype=torch.float32)
    with pytest.raises(ValueError, match="h must be"):
        head(h[:, :3], z, pos, batch)
    with pytest.raises(ValueError, match="pos must be"):
        head(h, z, pos[:, :2], batch)
    with pytest.raises(ValueError, match="z must"):
        head(h, z.float(), pos, batch)


def test_fit_extensive_recovers_references():
    gen = torch.Generator().manual_seed(1)
    sizes = torch.randint(3, 12, (200,), generator=gen)
    batch = torch.repeat_interleave(torch.arange(200), sizes)
    z = QM9_Z[torch.randint(0, 5, (len(batch),), generator=gen)]
    ref = torch.zeros(MAX_Z + 1, dtype=torch.float64)
    ref[QM9_Z] = torch.tensor([-13.6, -1030.0, -1485.0, -2040.0, -2714.0], dtype=torch.float64)
    noise = 0.01 * torch.randn(len(batch), generator=gen, dtype=torch.float64)
    y = torch.zeros(200, dtype=torch.float64).index_add_(0, batch, ref[z] + 0.3 + noise)
    mean, std, atomref = ExtensiveHead(C).fit_statistics(
        y[:, None], z, torch.zeros(len(z), 3), batch
    )
    # a constant per atom cannot be told apart from the references: compare predictions
    fitted = torch.zeros(200, dtype=torch.float64).index_add_(0, batch, atomref[z, 0] + mean)
    assert (fitted - y).abs().max() < 0.2
    assert 0 < float(std) < 0.01


def test_fit_spatial_extent_recovers_weights():
    gen = torch.Generator().manual_seed(2)
    sizes = torch.randint(3, 12, (100,), generator=gen)
    batch = torch.repeat_interleave(torch.arange(100), sizes)
    z = QM9_Z[torch.randint(0, 5, (len(batch),), generator=gen)]
    pos = 1.5 * torch.randn(len(batch), 3, generator=gen, dtype=torch.float64)
    weights = torch.zeros(MAX_Z + 1, dtype=torch.float64)
    weights[QM9_Z] = torch.tensor([1.0, 6.0, 7.0, 8.0, 9.0], dtype=torch.float64)
    head = ElectronicSpatialExtentHead(C).double()
    r2 = head.relative_pos(z, pos, batch, 100).pow(2).sum(-1)
    y = torch.zeros(100, dtype=torch.float64).index_add_(
        0, batch, BOHR2_PER_ANGSTROM2 * weights[z] * r2
    )
    stats = head.fit_statistics(y[:, None], z, pos, batch)
    fitted = torch.nn.functional.softplus(stats.atomref[QM9_Z, 0])
    assert torch.allclose(fitted, weights[QM9_Z], rtol=1e-6)
    head.set_statistics(*stats)
    zero_mlp(head)
    h = torch.randn(len(z), C, dtype=torch.float64)
    assert torch.allclose(head(h, z, pos, batch).flatten(), y, rtol=1e-6)


def test_gradcheck_dipole():
    h, z, pos, batch = molecules(sizes=(3, 2))
    head = DipoleHead(C).double()
    pos.requires_grad_(True)
    h.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda h, p: head(h, z, p, batch), (h, pos))
