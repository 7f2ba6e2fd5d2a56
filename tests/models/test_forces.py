"""Forces of FLTNet: the exact gradient of its energy in every mode, and equivariant."""

import pytest
import torch

import flt3d.nn.pairs as pairs
from flt3d.models import FLTNet
from flt3d.nn import set_attention, set_redraw
from flt3d.testing import random_rotation

ELEMENTS = (1, 6, 8, 29)


def model_for(mode: str, **options) -> FLTNet:
    torch.manual_seed(0)
    model = FLTNet(
        hidden_channels=16,
        num_layers=2,
        heads=2,
        target="energy",
        elements=ELEMENTS,
        num_features=16,
        num_frequencies=16,
        std=0.5,
        **options,
    ).double()
    set_attention(model, mode)
    return model.eval()


def cloud(n: int, seed: int = 0, density: float = 0.1):
    gen = torch.Generator().manual_seed(seed)
    side = (n / density) ** (1 / 3)
    pos = side * torch.rand(n, 3, generator=gen, dtype=torch.float64)
    z = torch.tensor(ELEMENTS)[torch.randint(0, len(ELEMENTS), (n,), generator=gen)]
    return z, pos


def central_differences(model, z, pos, batch, coords, h=1e-5):
    out = []
    for atom, axis in coords:
        plus, minus = pos.clone(), pos.clone()
        plus[atom, axis] += h
        minus[atom, axis] -= h
        with torch.no_grad():
            e = model(z, plus, batch).sum() - model(z, minus, batch).sum()
        out.append(-float(e) / (2 * h))
    return torch.tensor(out, dtype=torch.float64)


# every mode FLTNet offers: exact (all pairs, the same function), linear on small graphs
# ([G, n, n] blocks), linear on a neighbour list (plain and chunked pair sums), a global
# low-rank long range, and no cutoff at all (low-rank RPE and filters)
CASES = {
    "exact": ("exact", {}, 20),
    "linear dense": ("linear", {}, 20),
    "linear neighbour list": ("linear", {}, 90),
    "linear chunked": ("linear", {}, 90),
    "linear long range": ("linear", {"long_range": "isotropic_mixture"}, 90),
    "exact long range": ("exact", {"long_range": "isotropic_mixture"}, 90),
    "linear no cutoff": ("linear", {"cutoff": None, "far_temperature": 1.0}, 20),
    "linear long-range filter": ("linear", {"long_range_filter": "isotropic_mixture"}, 90),
    "exact long-range filter": ("exact", {"long_range_filter": "isotropic_mixture"}, 20),
    "exact local attention": ("exact", {"far_attention": False}, 20),
    "linear local attention dense": ("linear", {"far_attention": False}, 20),
    "linear local attention": ("linear", {"far_attention": False}, 90),
    "exact latent charges": ("exact", {"far_attention": False, "latent_charges": 3}, 20),
    "linear latent charges": ("linear", {"far_attention": False, "latent_charges": 3}, 90),
    "exact Coulomb charges": (
        "exact",
        {"far_attention": False, "latent_charges": 3, "charges_spectrum": "coulomb"},
        20,
    ),
    "linear Coulomb charges": (
        "linear",
        {"far_attention": False, "latent_charges": 3, "charges_spectrum": "coulomb"},
        90,
    ),
    "linear neutral Coulomb charges": (
        "linear",
        {
            "far_attention": False,
            "latent_charges": 3,
            "charges_spectrum": "coulomb",
            "neutral_charges": True,
        },
        90,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_forces_equal_finite_differences(case, monkeypatch):
    if case == "linear chunked":
        monkeypatch.setattr(pairs, "_PLAIN_CHUNKS", 0)
        monkeypatch.setattr(pairs, "_CHUNK_ELEMENTS", 1 << 14)
    mode, options, n = CASES[case]
    model = model_for(mode, **options)
    z, pos = cloud(n)
    batch = torch.zeros(n, dtype=torch.long)
    energy, forces = model.energy_and_forces(z, pos, batch)
    assert energy.shape == (1, 1) and forces.shape == (n, 3)
    assert not energy.requires_grad and not forces.requires_grad
    coords = [(0, 0), (1, 2), (n // 2, 1), (n - 1, 0), (n - 2, 2)]
    numeric = central_differences(model, z, pos, batch, coords)
    analytic = torch.stack([forces[a, b] for a, b in coords])
    scale = forces.abs().max()
    assert scale > 1e-3
    assert (numeric - analytic).abs().max() <= 1e-6 * scale, (numeric, analytic)


@pytest.mark.parametrize("mode,n", [("exact", 20), ("linear", 20), ("linear", 90)])
def test_forces_rotate_with_the_structure(mode, n):
    """Exact and neighbour-list modes are rotation invariant, so forces are equivariant; the
    linear mode's far part (random features, content logits only) is too at these settings."""
    model = model_for(mode)
    z, pos = cloud(n, seed=1)
    rot = random_rotation(dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    e1, f1 = model.energy_and_forces(z, pos)
    e2, f2 = model.energy_and_forces(z, pos @ rot.T)
    assert (f2 - f1 @ rot.T).abs().max() <= 1e-5 * f1.abs().max()
    assert torch.allclose(e1, e2, rtol=0, atol=1e-9 * float(e1.abs().max()) + 1e-12)


@pytest.mark.parametrize("mode,n", [("exact", 20), ("linear", 90)])
def test_energy_is_translation_invariant(mode, n):
    model = model_for(mode, long_range="isotropic_mixture")
    z, pos = cloud(n, seed=3)
    with torch.no_grad():
        e1 = model(z, pos)
        e2 = model(z, pos + torch.tensor([13.0, -7.5, 2.25], dtype=torch.float64))
    assert (e1 - e2).abs().max() <= 1e-10 * e1.abs().max()


@pytest.mark.parametrize("n", [20, 90])
def test_a_force_loss_trains_every_parameter_group(n, monkeypatch):
    """In training mode the forces keep their graph: a loss on them has gradients, equal on
    the chunked and the plain pair-sum paths."""
    z, pos = cloud(n, seed=4)
    target = torch.randn(n, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    grads = []
    for chunk in (False, True):
        if chunk:
            monkeypatch.setattr(pairs, "_PLAIN_CHUNKS", 0)
            monkeypatch.setattr(pairs, "_CHUNK_ELEMENTS", 1 << 14)
        model = model_for("linear").train()
        set_redraw(model, "never")
        energy, forces = model.energy_and_forces(z, pos)
        assert forces.requires_grad
        loss = (forces - target).pow(2).mean() + energy.pow(2).mean()
        grads.append(torch.autograd.grad(loss, list(model.parameters()), allow_unused=True))
    for (name, _), g0, g1 in zip(model.named_parameters(), *grads):
        if g0 is None:
            assert g1 is None, name
            continue
        assert torch.isfinite(g0).all(), name
        error = float((g0 - g1).abs().max() / g0.abs().max().clamp_min(1e-30))
        assert error <= 1e-8, (name, error)
    assert sum(float(g.abs().sum()) for g in grads[0] if g is not None) > 0


def test_forces_need_an_energy_head():
    model = FLTNet(hidden_channels=16, num_layers=1, heads=2, target="gap")
    with pytest.raises(ValueError, match="extensive"):
        model.energy_and_forces(torch.tensor([6, 1]), torch.randn(2, 3))


def test_linear_error_reports_and_restores():
    """The diagnostic measures a nonzero, bounded error (16 features on a random cloud) and
    leaves the model's draws, modes and training flag as they were."""
    model = model_for("exact", long_range_filter="isotropic_mixture")
    z, pos = cloud(90, seed=6)
    before = {name: b.clone() for name, b in model.named_buffers()}
    error = model.linear_error(z, pos, draws=3)
    assert 0 < error["representation_mean"] <= error["representation_max"] < 0.3
    assert error["prediction_mae"] >= 0
    assert model.blocks[0].conv.attention == "exact" and not model.training
    for name, b in model.named_buffers():
        assert torch.equal(b, before[name]), name


def test_local_attention_is_local_and_one_function():
    """far_attention=False: an atom beyond every cutoff changes nothing, linear equals exact
    (no random features), and forces are the gradient."""
    exact = model_for("exact", far_attention=False)
    linear = model_for("linear", far_attention=False)
    z, pos = cloud(90, seed=7)
    with torch.no_grad():
        e_exact, e_linear = exact(z, pos), linear(z, pos)
    assert torch.allclose(e_exact, e_linear, rtol=1e-10, atol=1e-10)
    far = torch.cat([pos, pos.new_tensor([[500.0, 0.0, 0.0]])])
    h = linear.representation(z, pos)
    for element in (1, 29):
        h_far = linear.representation(torch.cat([z, z.new_tensor([element])]), far)
        assert torch.allclose(h_far[:-1], h, atol=1e-12)
    _, forces = linear.energy_and_forces(z, pos)
    numeric = central_differences(linear, z, pos, None, [(0, 0), (45, 2)])
    analytic = torch.stack([forces[0, 0], forces[45, 2]])
    assert torch.allclose(numeric, analytic, atol=1e-6 * float(forces.abs().max()))


@pytest.mark.parametrize("options", [{}, {"long_range_filter": "isotropic_mixture"}])
def test_mixed_sizes_train_with_finite_gradients(options):
    """Graphs of different sizes pad the dense layout of linear mode: padded rows have no
    keys, and neither they nor rows whose near estimate is tiny may give NaN gradients."""
    model = model_for("linear", **options).train()
    z1, pos1 = cloud(7, seed=8)
    z2, pos2 = cloud(19, seed=9)
    z, pos = torch.cat([z1, z2]), torch.cat([pos1, pos2 * 3.0])
    batch = torch.cat([torch.zeros(7, dtype=torch.long), torch.ones(19, dtype=torch.long)])
    energy, forces = model.energy_and_forces(z, pos, batch)
    loss = energy.pow(2).mean() + forces.pow(2).mean()
    grads = torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad],
                                allow_unused=True)  # fmt: skip
    assert torch.isfinite(energy).all() and torch.isfinite(forces).all()
    assert all(g is None or torch.isfinite(g).all() for g in grads)
