"""CoulombKernel: its closed form, its density draws (unbiased, error ~ R^-1/2) and its use in
the latent charges, in float64 against brute-force sums."""

import math

import numpy as np
import pytest
import torch

from flt3d.models import FLTNet
from flt3d.nn import CoulombKernel, LatentCharges
from flt3d.nn.densities.coulomb import erf_over_x
from flt3d.testing import random_rotation


def kernel(**options) -> CoulombKernel:
    torch.manual_seed(0)
    module = CoulombKernel(3, 3, length_scale=2.0, **options).double()
    with torch.no_grad():
        module.height.copy_(torch.tensor([1.0, 0.7, 2.5]))
    return module


def displacements(n: int = 300, seed: int = 0) -> torch.Tensor:
    """Displacements of a 40 Å cluster's pairs: most far beyond the smoothing lengths."""
    gen = torch.Generator().manual_seed(seed)
    return 40.0 * (torch.rand(n, 3, generator=gen, dtype=torch.float64) - 0.5)


def test_closed_form_is_the_smoothed_coulomb_potential():
    module = kernel()
    delta = displacements()
    sigma, height = module.sigma.detach(), module.height.detach()
    r = delta.norm(dim=-1, keepdim=True)
    expected = height * 0.5 * math.sqrt(math.pi) * sigma * torch.erf(r / sigma) / r
    torch.testing.assert_close(module.limit(delta), expected, rtol=1e-12, atol=0)
    torch.testing.assert_close(module.limit(torch.zeros(1, 3, dtype=torch.float64))[0], height)
    far = torch.tensor([[0.0, 0.0, 200.0]], dtype=torch.float64)  # 1/r far out
    torch.testing.assert_close(
        module.limit(far)[0], height * 0.5 * math.sqrt(math.pi) * sigma / 200.0, rtol=1e-12, atol=0
    )
    assert bool((sigma > module.length_scale).all())


def test_erf_over_x_is_smooth_through_zero():
    x2 = torch.tensor([0.0, 1e-9, 1e-7, 9.9e-7, 1.01e-6, 1e-3, 0.5, 4.0], dtype=torch.float64)
    x = x2.sqrt()
    exact = torch.where(x > 0, 0.5 * math.sqrt(math.pi) * torch.erf(x) / x.clamp_min(1e-300), 1.0)
    torch.testing.assert_close(erf_over_x(x2), exact, rtol=1e-13, atol=0)
    delta = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)  # self-pairs: finite forces
    kernel().limit(delta).sum().backward()
    assert torch.isfinite(delta.grad).all() and float(delta.grad.abs().max()) == 0.0
    delta = torch.tensor([[0.3, -0.2, 0.5]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda d: kernel().limit(d), (delta,))


def test_frequency_norms_are_half_normal_with_the_kernel_scale():
    module = kernel(num_frequencies=20000, nodes="iid")
    xi, a, b = module.estimate()
    tau = 1.0 / (math.sqrt(2.0) * math.pi * module.sigma.detach())
    norms = xi.norm(dim=-1) / tau.unsqueeze(-1)  # standard half-normal
    # mean sqrt(2/pi), second moment 1, each within 4 standard errors of 20,000 draws
    assert (norms.mean(-1) - math.sqrt(2 / math.pi)).abs().max() < 4 * 0.6028 / math.sqrt(20000)
    assert (norms.pow(2).mean(-1) - 1.0).abs().max() < 4 * math.sqrt(2) / math.sqrt(20000)
    torch.testing.assert_close(a, module.height.detach().unsqueeze(-1).expand_as(a))
    assert float(b.abs().max()) == 0.0


@pytest.mark.parametrize("nodes", ["iid", "quadrature"])
def test_density_draws_are_unbiased_and_the_error_falls_as_r_to_minus_one_half(nodes):
    """Over fresh draws: the mean estimate is the closed form within 4 standard errors on
    every pair and head, and the RMS error falls with log-log slope <= -0.4 from R = 64
    to 4096."""
    delta = displacements(200, seed=1)
    rms = {}
    for frequencies in (64, 512, 4096):
        module = kernel(num_frequencies=frequencies, nodes=nodes)
        exact = module.limit(delta).detach()
        gen = torch.Generator().manual_seed(3)
        with torch.no_grad():
            draws = torch.stack(
                [module(delta, module.draw_frequencies(generator=gen).double()) for _ in range(64)]
            )
        error = draws - exact
        standard_error = error.std(0) / math.sqrt(len(draws))
        assert bool((error.mean(0).abs() <= 4 * standard_error + 1e-12).float().mean() > 0.99)
        rms[frequencies] = float(error.pow(2).mean().sqrt() / exact.pow(2).mean().sqrt())
    slope = np.polyfit(np.log([64, 512, 4096]), np.log([rms[64], rms[512], rms[4096]]), 1)[0]
    assert slope <= -0.4, rms
    assert rms[4096] < 0.05, rms


def test_only_the_density_sampler_and_three_dimensions():
    with pytest.raises(ValueError, match="infinite variance"):
        CoulombKernel(2, 3, sampler="proposal")
    with pytest.raises(ValueError, match="pos_dim must be 3"):
        CoulombKernel(2, 2)


def charges_layer(attention: str, **options) -> LatentCharges:
    torch.manual_seed(0)
    module = LatentCharges(12, 3, spectrum="coulomb", attention=attention, **options).double()
    with torch.no_grad():
        module.charges.weight.normal_(0.0, 1.0)
        module.charges.bias.normal_(0.0, 0.5)
    return module.eval()


def cluster(n: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(n, 12, generator=gen, dtype=torch.float64)
    pos = 30.0 * torch.rand(n, 3, generator=gen, dtype=torch.float64)
    return h, pos


def test_latent_charges_with_the_coulomb_kernel_sum_erf_over_r_on_every_pair():
    module = charges_layer("exact")
    h, pos = cluster(25)
    with torch.no_grad():
        q = module.charges(h)
        sigma, height = module.kernel.spectrum.sigma, module.kernel.spectrum.height
        expected = 0.0
        for i in range(25):
            for j in range(25):
                r = float((pos[i] - pos[j]).norm())
                f = height * (
                    1.0 if r == 0 else 0.5 * math.sqrt(math.pi) * sigma * torch.erf(r / sigma) / r
                )
                expected += 0.5 * module.scale * float((q[i] * q[j] * f).sum())
        energy = float(module(h, pos))
    assert abs(expected) > 1e-2
    assert energy == pytest.approx(expected, rel=1e-10)


def test_latent_charges_linear_mode_converges_to_the_coulomb_sum_and_is_rotation_invariant():
    h, pos = cluster(60, seed=2)
    module = charges_layer("exact", num_frequencies=256, nodes="quadrature")
    with torch.no_grad():
        exact = float(module(h, pos))
        module.kernel.attention = "linear"
        gen = torch.Generator().manual_seed(5)
        draws = []
        for _ in range(100):
            module.kernel.spectrum.redraw_frequencies(generator=gen)
            draws.append(float(module(h, pos)))
        error = torch.tensor(draws, dtype=torch.float64) - exact
        assert abs(float(error.mean())) <= 4 * float(error.std()) / 10
        assert float(error.pow(2).mean().sqrt()) < 0.05 * abs(exact)
        rot = random_rotation(dtype=torch.float64, generator=torch.Generator().manual_seed(4))
        e, moved = module(h, pos), module(h, pos @ rot.T + 7.0)
    assert abs(float(moved - e)) <= 0.05 * abs(float(e))


def test_fltnet_takes_the_coulomb_kernel_for_its_charges_and_rebuilds_from_its_config():
    torch.manual_seed(0)
    model = FLTNet(hidden_channels=12, num_layers=1, heads=2, target="energy", elements=(11, 17),
                   latent_charges=2, charges_spectrum="coulomb", std=0.3).double()  # fmt: skip
    assert isinstance(model.charges.kernel.spectrum, CoulombKernel)
    rebuilt = FLTNet(**model.config).double()
    rebuilt.load_state_dict(model.state_dict())
    z = torch.tensor([11, 17, 11, 17])
    pos = 4.0 * torch.randn(4, 3, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(z, pos), model.eval()(z, pos))
