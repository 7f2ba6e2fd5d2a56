import numpy as np
import pytest
import torch

from flt3d.nn import Neighbors, cosine_cutoff, neighbor_list
from flt3d.nn.neighbors import spatial_order


def brute_pairs(pos, batch, cutoff, self_loops=False):
    d = torch.cdist(pos, pos)
    keep = (batch[:, None] == batch[None, :]) & (d < cutoff)
    if not self_loops:
        keep.fill_diagonal_(False)
    return {tuple(p) for p in torch.nonzero(keep).tolist()}


@pytest.mark.parametrize("self_loops", [False, True])
def test_matches_brute_force_on_a_batch(self_loops):
    gen = torch.Generator().manual_seed(0)
    sizes = [5, 1, 12, 7]
    batch = torch.cat([torch.full((n,), g) for g, n in enumerate(sizes)])
    batch = batch[torch.randperm(batch.numel(), generator=gen)]  # unsorted graph ids
    pos = 2.0 * torch.randn(batch.numel(), 3, generator=gen, dtype=torch.float64)
    nbrs = neighbor_list(pos, batch, cutoff=2.5, self_loops=self_loops)
    got = {tuple(p) for p in nbrs.index.T.tolist()}
    assert got == brute_pairs(pos, batch, 2.5, self_loops)
    assert len(got) == nbrs.num_pairs  # each ordered pair once
    assert bool((nbrs.index[0][1:] >= nbrs.index[0][:-1]).all())  # sorted by receiver
    delta = nbrs.displacements(pos)
    i, j = nbrs.index
    assert torch.allclose(delta, pos[i] - pos[j])


@pytest.mark.parametrize("dim", [1, 2])
def test_low_dimensional_coordinates(dim):
    pos = torch.randn(30, dim, generator=torch.Generator().manual_seed(1))
    batch = torch.zeros(30, dtype=torch.long)
    nbrs = neighbor_list(pos, cutoff=0.7)
    assert {tuple(p) for p in nbrs.index.T.tolist()} == brute_pairs(pos, batch, 0.7)


def test_periodic_cell_matches_ase():
    ase_nl = pytest.importorskip("ase.neighborlist")
    from ase import Atoms

    gen = np.random.default_rng(0)
    cell = np.array([[6.0, 0.0, 0.0], [1.0, 5.5, 0.0], [0.5, 0.3, 7.0]])
    frac = gen.random((20, 3))
    atoms = Atoms("H20", scaled_positions=frac, cell=cell, pbc=True)
    i_ref, j_ref, s_ref = ase_nl.neighbor_list("ijS", atoms, 3.0)
    ref = {(int(a), int(b), *map(int, s)) for a, b, s in zip(i_ref, j_ref, s_ref)}
    pos = torch.tensor(atoms.positions)
    nbrs = neighbor_list(pos, cutoff=3.0, cell=torch.tensor(cell))
    # ase's shift S gives r_j + S cell near r_i; here delta = r_i - r_j - S cell
    got = {(a, b, *map(int, s)) for (a, b), s in zip(nbrs.index.T.tolist(), nbrs.shift.tolist())}
    assert got == ref
    delta = nbrs.displacements(pos, torch.tensor(cell))
    assert float(delta.norm(dim=-1).max()) < 3.0
    ref_d = {k: None for k in ref}
    assert len(ref_d) == nbrs.num_pairs


def test_displacements_carry_gradients_to_positions_and_cell():
    pos = torch.randn(8, 3, dtype=torch.float64) * 1.5
    cell = torch.eye(3, dtype=torch.float64) * 4.0
    nbrs = neighbor_list(pos, cutoff=2.0, cell=cell)
    pos.requires_grad_(True)
    cell.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p, c: nbrs.displacements(p, c).norm(dim=-1), (pos, cell))


def test_cosine_cutoff_is_smooth_and_vanishes():
    r = torch.linspace(0, 6, 601, dtype=torch.float64, requires_grad=True)
    u = cosine_cutoff(r, 5.0)
    (grad,) = torch.autograd.grad(u.sum(), r)
    assert u[0] == 1 and grad[0].abs() < 1e-12
    at = int(torch.argmin((r - 5.0).abs()))
    assert u[at:].abs().max() < 1e-12 and grad[at - 1 :].abs().max() < 0.01
    assert bool((u[1:] <= u[:-1] + 1e-15).all())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"cutoff": 0.0}, "cutoff must be a positive number"),
        ({"cutoff": float("nan")}, "cutoff must be a positive number"),
        ({"cutoff": 1.0, "pos": torch.randn(4, 5)}, "pos must be"),
        ({"cutoff": 1.0, "pos": torch.randn(4, 2), "cell": torch.eye(3)}, "needs 3D coordinates"),
        ({"cutoff": 1.0, "cell": torch.eye(2)}, "cell must be"),
    ],
)
def test_bad_input(kwargs, match):
    kwargs = {"pos": torch.randn(4, 3), **kwargs}
    with pytest.raises(ValueError, match=match):
        neighbor_list(kwargs.pop("pos"), **kwargs)


def test_empty_and_repr():
    nbrs = neighbor_list(torch.zeros(0, 3), cutoff=1.0)
    assert isinstance(nbrs, Neighbors) and nbrs.num_pairs == 0
    assert repr(nbrs) == "Neighbors(num_pairs=0, cutoff=1.0)"


def test_spatial_order_keeps_graphs_and_puts_neighbours_close_in_memory():
    gen = torch.Generator().manual_seed(0)
    n = 4000
    pos = 40.0 * torch.rand(n, 3, generator=gen)
    batch = torch.randint(0, 3, (n,), generator=gen).sort().values
    order = spatial_order(pos, batch, cell_size=5.0)
    assert torch.equal(order.sort().values, torch.arange(n))
    assert torch.equal(batch[order], batch)  # graphs stay contiguous, in order
    before = neighbor_list(pos, batch, cutoff=5.0).index
    after = neighbor_list(pos[order], batch, cutoff=5.0).index
    assert after.shape == before.shape
    gap_before = (before[0] - before[1]).abs().double().median()
    gap_after = (after[0] - after[1]).abs().double().median()
    assert gap_after * 10 < gap_before, (gap_before, gap_after)
    with pytest.raises(ValueError, match="cell_size"):
        spatial_order(pos, batch, cell_size=0.0)


def test_fltnet_on_a_neighbour_list_is_equivariant_to_the_order_of_atoms():
    """The model sorts large systems in space order internally; the result is in the
    caller's order and the same function (float64 rounding)."""
    from flt3d.models import FLTNet

    torch.manual_seed(0)
    model = FLTNet(hidden_channels=16, num_layers=2, heads=2, attention="linear",
                   elements=(1, 8)).double().eval()  # fmt: skip
    gen = torch.Generator().manual_seed(1)
    n = 300
    pos = 14.0 * torch.rand(n, 3, generator=gen, dtype=torch.float64)
    z = torch.tensor([1, 8])[torch.randint(0, 2, (n,), generator=gen)]
    perm = torch.randperm(n, generator=gen)
    with torch.no_grad():
        h = model.representation(z, pos)
        h_perm = model.representation(z[perm], pos[perm])
    torch.testing.assert_close(h_perm, h[perm], rtol=1e-9, atol=1e-9)
