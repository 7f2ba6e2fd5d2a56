import math

import pytest
import torch

from flt3d.nn import FrequencySampler, make_spectrum
from flt3d.nn.samplers import chi_quantile


@pytest.mark.parametrize("nodes", ["iid", "orthogonal", "quadrature"])
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_nodes_are_standard_normal_in_law(nodes, dim):
    """Mean 0 and covariance I over many independent sets (each node marginally N(0, I)), and
    E|x|^2 = dim; bounds at about five standard errors."""
    gen = torch.Generator().manual_seed(0)
    x = FrequencySampler(nodes).draw(4000, 12, dim, generator=gen).double().reshape(-1, dim)
    se = 1 / math.sqrt(4000)  # sets are independent; nodes within one set may be dependent
    assert x.mean(0).abs().max() < 6 * se * math.sqrt(2)
    cov = x.T @ x / x.shape[0]
    assert (cov - torch.eye(dim, dtype=torch.float64)).abs().max() < 8 * se * math.sqrt(2)


def test_quadrature_radii_fill_every_stratum_once():
    gen = torch.Generator().manual_seed(1)
    x = FrequencySampler("quadrature").draw(50, 16, 3, generator=gen).double()
    u = torch.special.gammainc(torch.tensor(1.5, dtype=torch.float64), 0.5 * x.pow(2).sum(-1))
    strata = torch.sort((u * 16).floor(), dim=-1).values
    assert torch.equal(strata, torch.arange(16, dtype=torch.float64).expand(50, -1))


def test_chi_quantile_inverts_the_cdf():
    u = torch.linspace(0.01, 0.99, 50, dtype=torch.float64)
    for dim in (1, 2, 3, 5):
        r = chi_quantile(u, dim)
        back = torch.special.gammainc(torch.tensor(dim / 2, dtype=torch.float64), r * r / 2)
        assert torch.allclose(back, u, atol=1e-10)


def moved_isotropic(sampler, nodes, num_frequencies=32, seed=3):
    torch.manual_seed(0)
    g = make_spectrum(
        "isotropic_mixture",
        2,
        3,
        num_frequencies=num_frequencies,
        length_scale=0.5,
        sampler=sampler,
        nodes=nodes,
    ).double()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in g.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return g


def test_density_quadrature_is_unbiased_and_beats_proposal_draws():
    """On all pairs of a molecule-sized cloud: the mean over draws is within five standard
    errors of f for every sampler, and draws from g on a randomised quadrature have under
    half the RMS error of i.i.d. proposal draws at the same R."""
    delta = 1.5 * torch.randn(200, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    rmse = {}
    for sampler, nodes in [("proposal", "iid"), ("density", "iid"), ("density", "quadrature")]:
        g = moved_isotropic(sampler, nodes)
        exact = g.limit(delta)
        gen = torch.Generator().manual_seed(0)
        draws = torch.stack(
            [g(delta, g.draw_frequencies(generator=gen).double()) for _ in range(300)]
        )
        se = draws.std(0) / math.sqrt(300)
        z = (draws.mean(0) - exact) / se.clamp_min(1e-12)
        assert z.abs().max() < 5, (sampler, nodes, z.abs().max())
        rmse[sampler, nodes] = ((draws - exact).pow(2).mean().sqrt() / exact.pow(2).mean().sqrt()).item()
    assert rmse["density", "quadrature"] < 0.5 * rmse["proposal", "iid"], rmse
    assert rmse["density", "quadrature"] < rmse["density", "iid"], rmse


def test_estimator_error_reports_bias_and_rmse():
    g = moved_isotropic("density", "quadrature")
    delta = torch.randn(50, 3, dtype=torch.float64)
    report = g.estimator_error(delta, draws=64)
    assert set(report) == {"bias", "rmse", "stored"} and len(report["rmse"]) == 2
    assert all(0 <= b < r for b, r in zip(report["bias"], report["rmse"]))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"spectrum": "laplace", "sampler": "density"}, "cannot draw from its own density"),
        ({"spectrum": "isotropic_mixture", "sampler": "density", "num_frequencies": 10}, "multiple of"),
        ({"spectrum": "isotropic_mixture", "nodes": "sobol"}, "nodes must be one of"),
        ({"spectrum": "isotropic_mixture", "sampler": "mixture"}, "sampler must be one of"),
    ],
)
def test_bad_options(kwargs, match):
    name = kwargs.pop("spectrum")
    with pytest.raises(ValueError, match=match):
        make_spectrum(name, 2, 3, **kwargs)
