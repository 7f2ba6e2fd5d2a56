"""LatentCharges: the energy it computes, its linear-mode estimate, and its invariances."""

import math

import pytest
import torch

from flt3d.models import FLTNet
from flt3d.nn import LatentCharges
from flt3d.testing import random_rotation


def layer(attention: str, channels: int = 3, **options) -> LatentCharges:
    torch.manual_seed(0)
    module = LatentCharges(12, channels, attention=attention, **options).double()
    with torch.no_grad():  # charges of order one, so the term is not negligible
        module.charges.weight.normal_(0.0, 1.0)
        module.charges.bias.normal_(0.0, 0.5)
    return module.eval()


def droplet(n: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(n, 12, generator=gen, dtype=torch.float64)
    pos = 12.0 * torch.rand(n, 3, generator=gen, dtype=torch.float64)
    return h, pos


def brute_force(module: LatentCharges, h, pos, batch, num_graphs):
    """0.5 scale sum_c sum_{i,j in g} q_ic q_jc sum_b w_cb exp(-2 pi^2 sigma_cb^2 r_ij^2)."""
    q = module.charges(h)
    spectrum = module.kernel.spectrum
    weight, width = spectrum.weight.double(), spectrum.width.double().squeeze(-1)  # [C, B]
    energy = torch.zeros(num_graphs, 1, dtype=torch.float64)
    for i in range(h.shape[0]):
        for j in range(h.shape[0]):
            if batch[i] != batch[j]:
                continue
            r2 = float((pos[i] - pos[j]).pow(2).sum())
            f = (weight * torch.exp(-2 * math.pi**2 * width.pow(2) * r2)).sum(-1)  # [C]
            energy[batch[i], 0] += 0.5 * module.scale * float((q[i] * q[j] * f).sum())
    return energy


def test_exact_mode_is_the_pair_sum_of_latent_charges():
    module = layer("exact")
    h, pos = droplet(30)
    batch = torch.cat([torch.zeros(12, dtype=torch.long), torch.ones(18, dtype=torch.long)])
    with torch.no_grad():
        energy = module(h, pos, batch)
        expected = brute_force(module, h, pos, batch, 2)
    assert energy.shape == (2, 1)
    assert expected.abs().min() > 1e-2
    torch.testing.assert_close(energy, expected, rtol=1e-10, atol=0)


def test_each_graph_is_its_own_system():
    module = layer("exact")
    h, pos = droplet(30, seed=1)
    batch = torch.cat([torch.zeros(12, dtype=torch.long), torch.ones(18, dtype=torch.long)])
    with torch.no_grad():
        together = module(h, pos, batch)
        apart = torch.cat([module(h[:12], pos[:12]), module(h[12:], pos[12:] + 100.0)])
    torch.testing.assert_close(together, apart, rtol=1e-10, atol=0)


def test_linear_mode_is_unbiased_and_its_error_falls_with_frequencies():
    """Float64, many fresh draws: the mean of the estimates is the exact energy within its
    standard error, and the RMS error falls about as R^-1/2 (at least 2.5x from 16 to 256)."""
    h, pos = droplet(60, seed=2)
    rms = {}
    for frequencies in (16, 256):
        module = layer("exact", num_frequencies=frequencies, length_scale=3.0)
        with torch.no_grad():
            exact = float(module(h, pos))
            module.kernel.attention = "linear"
            gen = torch.Generator().manual_seed(7)
            draws = []
            for _ in range(200):
                module.kernel.spectrum.redraw_frequencies(generator=gen)
                draws.append(float(module(h, pos)))
        draws = torch.tensor(draws, dtype=torch.float64)
        error = draws - exact
        assert abs(float(error.mean())) <= 4 * float(error.std()) / math.sqrt(len(draws))
        rms[frequencies] = float(error.pow(2).mean().sqrt()) / abs(exact)
    assert rms[16] / rms[256] >= 2.5, rms
    assert rms[256] < 0.05, rms


@pytest.mark.parametrize("attention", ["exact", "linear"])
def test_energy_is_invariant_to_rotation_translation_and_order(attention):
    module = layer(attention, nodes="quadrature")
    h, pos = droplet(40, seed=3)
    rot = random_rotation(dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    perm = torch.randperm(40, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        e = module(h, pos)
        moved = module(h, pos @ rot.T + torch.tensor([3.0, -9.0, 20.0], dtype=torch.float64))
        permuted = module(h[perm], pos[perm])
    torch.testing.assert_close(permuted, e, rtol=1e-10, atol=0)
    if attention == "exact":
        torch.testing.assert_close(moved, e, rtol=1e-10, atol=0)
    else:  # one draw of randomly rotated quadrature nodes: invariant to a few per cent
        assert abs(float(moved - e)) <= 0.05 * abs(float(e))


def test_fltnet_adds_the_term_and_checks_its_head():
    torch.manual_seed(0)
    model = FLTNet(hidden_channels=12, num_layers=1, heads=2, target="energy",
                   elements=(1, 8), latent_charges=2, attention="exact", std=0.3).double()  # fmt: skip
    z = torch.tensor([8, 1, 1, 8, 1, 1])
    pos = 3.0 * torch.randn(6, 3, dtype=torch.float64)
    with torch.no_grad():
        h = model.representation(z, pos)
        expected = model.head(h, z, pos, torch.zeros(6, dtype=torch.long), num_graphs=1)
        expected = expected + model.charges(h, pos)
        torch.testing.assert_close(model(z, pos), expected, rtol=1e-12, atol=0)
    assert not model.local
    with pytest.raises(ValueError, match="extensive"):
        FLTNet(hidden_channels=12, num_layers=1, heads=2, target="gap", latent_charges=2)
    with pytest.raises(ValueError, match="channels must be positive"):
        LatentCharges(12, 0)


@pytest.mark.parametrize("attention", ["exact", "linear"])
def test_neutral_charges_sum_to_zero_and_ignore_a_common_shift(attention):
    neutral = layer(attention, neutral=True)
    free = layer(attention)
    h, pos = droplet(30, seed=2)
    batch = torch.cat([torch.zeros(12, dtype=torch.long), torch.ones(18, dtype=torch.long)])
    with torch.no_grad():
        q = neutral.charge(h, batch)
        totals = q.new_zeros(2, 3).index_add(0, batch, q)
        torch.testing.assert_close(
            totals, torch.zeros(2, 3, dtype=torch.float64), rtol=0, atol=1e-12
        )
        # a neutral layer's energy is the free layer's on the centred charges
        free.charges.bias.sub_(free.charges(h)[batch == 0].mean(0))
        torch.testing.assert_close(
            neutral(h[:12], pos[:12]), free(h[:12], pos[:12]), rtol=1e-10, atol=0
        )
        energy = neutral(h, pos, batch)
        for module in (neutral, free):
            module.charges.bias.add_(0.7)  # the same charge added on every atom
        torch.testing.assert_close(neutral(h, pos, batch), energy, rtol=1e-10, atol=0)
        assert (free(h, pos, batch) - energy).abs().min() > 1e-2
    assert "neutral=True" in repr(neutral)


def test_more_frequencies_at_evaluation_shrink_the_linear_error():
    """set_num_frequencies: a fresh, larger draw; the error over draws falls (float64)."""
    module = layer("exact", num_frequencies=16)
    h, pos = droplet(60, seed=6)
    with torch.no_grad():
        exact = float(module(h, pos))
        module.kernel.attention = "linear"
        spectrum = module.kernel.spectrum
        errors = {}
        for num in (16, 512):
            spectrum.set_num_frequencies(num, generator=torch.Generator().manual_seed(num))
            assert spectrum.frequencies.shape[1] == num
            draws = []
            for k in range(20):
                spectrum.redraw_frequencies(generator=torch.Generator().manual_seed(k))
                draws.append(float(module(h, pos)) - exact)
            errors[num] = float(torch.tensor(draws).pow(2).mean().sqrt())
    assert errors[512] * 3 < errors[16], errors
    with pytest.raises(ValueError, match="multiple of num_components"):
        spectrum.set_num_frequencies(18)
    assert spectrum.num_frequencies == 512


def _filter_energy(module: LatentCharges, h, pos, batch, num_graphs):
    """The low-rank filter's 0.5 scale sum_i q_i . phi_i: what the structure factors replace."""
    from flt3d.nn.graph import center_pos

    q = module.charges(h)
    pos = center_pos(pos, batch, num_graphs)
    potential = module.kernel(q.unsqueeze(-1), pos, batch).squeeze(-1)
    per_atom = 0.5 * module.scale * (q * potential).sum(-1, keepdim=True)
    return per_atom.new_zeros(num_graphs, 1).index_add(0, batch, per_atom)


@pytest.mark.parametrize("sampler", ["density", "proposal"])
def test_structure_factors_equal_the_low_rank_filter(sampler):
    module = layer("linear", num_frequencies=24, sampler=sampler)
    h, pos = droplet(30, seed=2)
    batch = torch.cat([torch.zeros(12, dtype=torch.long), torch.ones(18, dtype=torch.long)])
    with torch.no_grad():
        energy = module(h, pos, batch)
        expected = _filter_energy(module, h, pos, batch, 2)
    assert expected.abs().min() > 1e-2
    torch.testing.assert_close(energy, expected, rtol=1e-10, atol=0)


def test_chunked_structure_factors_equal_the_plain_sum_with_gradients(monkeypatch):
    from flt3d.nn import pairs

    module = layer("linear", num_frequencies=32)
    h, pos = droplet(40, seed=3)
    batch = torch.cat([torch.zeros(15, dtype=torch.long), torch.ones(25, dtype=torch.long)])

    def energy_and_forces():
        p = pos.clone().requires_grad_(True)
        energy = module(h, p, batch)
        (forces,) = torch.autograd.grad(-energy.sum(), p, retain_graph=True)
        grads = torch.autograd.grad(energy.sum(), list(module.parameters()), allow_unused=True)
        return energy.detach(), forces, grads

    plain = energy_and_forces()
    monkeypatch.setattr(pairs, "_CHUNK_ELEMENTS", 3 * 3 * 64 * 7)  # 7 atoms per chunk
    assert pairs.pair_chunking(40, 3 * 3 * 64)
    chunked = energy_and_forces()
    torch.testing.assert_close(chunked[0], plain[0], rtol=1e-12, atol=0)
    torch.testing.assert_close(chunked[1], plain[1], rtol=1e-10, atol=1e-12)
    for got, want in zip(chunked[2], plain[2]):
        if want is None:
            assert got is None
        else:
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
