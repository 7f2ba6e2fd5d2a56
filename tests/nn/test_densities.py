import math

import pytest
import torch

from flt3d.nn import SPECTRA, GaussianMixture, LocalRPE, make_spectrum, spectral_features
from flt3d.nn.densities import RadialMixture
from flt3d.testing import random_rotation


def moved(spec, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in spec.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return spec


# families defined for one coordinate dimension only; the others are tested in 2D
ONLY_POS_DIM = {"radial_basis": 3, "coulomb": 3}


@pytest.mark.parametrize("name", sorted(SPECTRA))
def test_features_factorise_the_rpe(name):
    pos_dim = ONLY_POS_DIM.get(name, 2)
    spec = moved(make_spectrum(name, 3, pos_dim, num_frequencies=8)).double()
    pos = 2 * torch.randn(7, pos_dim, dtype=torch.float64)
    psi_q, psi_k = spec.features(pos)
    assert psi_q.shape == psi_k.shape == (7, 3, 16)
    low_rank = torch.einsum("ihr,jhr->ijh", psi_q, psi_k)
    direct = spec(pos.unsqueeze(1) - pos.unsqueeze(0))
    assert torch.allclose(low_rank, direct, atol=1e-12)
    # |f_hat| never exceeds the spectral mass
    assert (direct.abs() <= spec.mass() + 1e-12).all()


def test_gaussian_mixture_converges_like_inverse_sqrt_r():
    """f_hat is unbiased for the closed form and its RMSE decays like R^(-1/2)."""
    spec = moved(GaussianMixture(2, 3, directional=True)).double()
    delta = 1.5 * torch.randn(
        40, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    exact = spec.limit(delta)
    gen = torch.Generator().manual_seed(2)
    rs, rmse = [16, 64, 256, 1024], []
    for r in rs:
        draws = []
        for _ in range(60):
            xi = spec.sample_proposal(r, generator=gen).double()
            a, b = spec.weights(xi)
            from flt3d.nn import spectral_rpe

            draws.append(spectral_rpe(delta, xi, a, b).detach())
        draws = torch.stack(draws)
        rmse.append((draws - exact).pow(2).mean().sqrt().item())
        if r == 1024:
            z = (draws.mean(0) - exact) / (draws.std(0) / math.sqrt(len(draws)))
            assert z.abs().max() < 4.5 and (z.abs() < 3).float().mean() > 0.9
    slope = (
        torch.linalg.lstsq(
            torch.tensor([[math.log(r), 1.0] for r in rs]), torch.tensor(rmse).log().unsqueeze(1)
        )
        .solution[0]
        .item()
    )
    assert -0.6 < slope < -0.4, (slope, rmse)


@pytest.mark.parametrize(
    "name", ["gaussian_mixture", "isotropic_mixture", "gaussian", "laplace", "local"]
)
def test_closed_form_matches_many_frequencies(name):
    spec = moved(make_spectrum(name, 2, 3, num_frequencies=8)).double()
    delta = torch.randn(30, 3, dtype=torch.float64)
    xi = spec.sample_proposal(200_000, generator=torch.Generator().manual_seed(0)).double()
    from flt3d.nn import spectral_rpe

    a, b = spec.weights(xi)
    mc = spectral_rpe(delta, xi, a, b)
    tol = 6 * (a.pow(2) + b.pow(2)).mean().sqrt().item() / math.sqrt(200_000)
    assert (mc - spec.limit(delta)).abs().max() < tol


def test_closed_forms():
    delta = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, -0.5]], dtype=torch.float64)
    gauss = make_spectrum("gaussian", 1, 3).double()
    ell = 1 / (2 * math.pi * gauss.width.item())
    expected = torch.exp(-delta.pow(2).sum(-1) / (2 * ell**2))
    assert torch.allclose(gauss.limit(delta)[:, 0], expected)
    lap = make_spectrum("laplace", 1, 3).double()
    ell = 1 / (2 * math.pi * lap.gamma.item())
    assert torch.allclose(lap.limit(delta)[:, 0], torch.exp(-delta.norm(dim=-1) / ell))


def test_isotropic_limit_depends_on_distance_only():
    spec = moved(make_spectrum("isotropic_mixture", 2, 3)).double()
    delta = torch.randn(20, 3, dtype=torch.float64)
    rot = random_rotation(generator=torch.Generator().manual_seed(3))
    assert torch.allclose(spec.limit(delta @ rot.T), spec.limit(delta))
    anis = moved(make_spectrum("gaussian_mixture", 2, 3)).double()
    assert not torch.allclose(anis.limit(delta @ rot.T), anis.limit(delta), atol=1e-3)


def test_local_rpe_is_concentrated_and_radius_learns():
    spec = LocalRPE(1, 1, radius=3.0).double()
    inside = spec.limit(torch.tensor([[0.0], [2.0]], dtype=torch.float64))
    outside = spec.limit(torch.tensor([[7.0], [10.0]], dtype=torch.float64))
    assert (inside > 0.7).all() and (outside.abs() < 1e-3).all()
    loss = spec(torch.tensor([[4.0]], dtype=torch.float64)).sum()
    loss.backward()
    assert spec.radius_raw.grad.abs().item() > 0


def test_weights_are_bounded():
    """Widths are capped by the proposal's, so g/p stays bounded even far out."""
    spec = GaussianMixture(2, 3)
    xi = 50 * spec.proposal_scale * torch.randn(2, 1000, 3)
    a, _ = spec.weights(xi)
    assert torch.isfinite(a).all() and a.abs().max() < 100


def test_redraw_and_learnable_frequencies():
    spec = make_spectrum("gaussian_mixture", 2, 3)
    before = spec.frequencies.clone()
    spec.redraw_frequencies(generator=torch.Generator().manual_seed(9))
    assert not torch.equal(before, spec.frequencies)
    assert "frequencies" in dict(spec.named_buffers())
    learn = make_spectrum("gaussian_mixture", 2, 3, learnable_frequencies=True)
    assert "frequencies" in dict(learn.named_parameters())
    learn(torch.randn(4, 3)).sum().backward()
    assert learn.frequencies.grad.abs().sum() > 0


def test_spectral_features_shapes():
    psi_q, psi_k = spectral_features(
        torch.randn(5, 1), torch.randn(2, 3, 1), torch.randn(2, 3), torch.zeros(2, 3)
    )
    assert psi_q.shape == (5, 2, 6)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: make_spectrum("wavelet", 2, 3), "spectrum must be one of"),
        (lambda: GaussianMixture(0, 3), "positive"),
        (lambda: GaussianMixture(2, 3, num_components=0), "num_components"),
        (lambda: GaussianMixture(2, 3, isotropic=True, directional=True), "directional"),
        (lambda: GaussianMixture(2, 3, proposal="uniform"), "proposal"),
        (lambda: LocalRPE(2, 1, radius=-1.0), "radius"),
        (lambda: GaussianMixture(2, 3)(torch.randn(4, 2)), r"delta must be \[..., 3\]"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# RadialMixture: shells in frequency space, a closed-form radial basis


def rotation(pos_dim: int, seed: int = 3) -> torch.Tensor:
    """A random orthogonal map of R^D: a reflection (1D), a planar or a 3D rotation."""
    gen = torch.Generator().manual_seed(seed)
    if pos_dim == 1:
        return -torch.eye(1, dtype=torch.float64)
    if pos_dim == 2:
        t = float(2 * math.pi * torch.rand(1, generator=gen, dtype=torch.float64))
        c, s = math.cos(t), math.sin(t)
        return torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    return random_rotation(generator=gen)


@pytest.mark.parametrize("pos_dim", [1, 2, 3])
def test_radial_mixture_closed_form_matches_many_frequencies(pos_dim):
    """limit == the 200k-frequency Monte Carlo sum within 5 of its own standard errors.

    The standard error is taken per displacement and head from the spread of the 200k terms
    (60 entries, normal: a 5-sigma miss anywhere has probability ~3e-5).
    """
    spec = moved(RadialMixture(2, pos_dim, num_frequencies=8)).double()
    delta = 1.5 * torch.randn(30, pos_dim, dtype=torch.float64)
    limit = spec.limit(delta)
    assert limit.std() > 0.1  # a non-trivial function of the displacement
    n = 200_000
    xi = spec.sample_proposal(n, generator=torch.Generator().manual_seed(0)).double()
    a, b = spec.weights(xi)
    assert torch.equal(b, torch.zeros_like(b))  # even: no directional part
    theta = 2 * math.pi * torch.einsum("...d,hrd->...hr", delta, xi)
    terms = a * theta.cos()  # [30, H, n], mean = the Monte Carlo estimate
    se = terms.std(-1) / math.sqrt(n)
    z = (terms.mean(-1) - limit) / se
    assert z.abs().max() < 5, z.abs().max()


@pytest.mark.parametrize("pos_dim", [1, 2, 3])
def test_radial_mixture_limit_depends_on_distance_only(pos_dim):
    spec = moved(RadialMixture(3, pos_dim)).double()
    delta = 2 * torch.randn(25, pos_dim, dtype=torch.float64)
    limit = spec.limit(delta)
    assert torch.allclose(spec.limit(delta @ rotation(pos_dim).T), limit, atol=1e-12)
    on_axis = torch.zeros_like(delta)
    on_axis[:, 0] = delta.norm(dim=-1)
    assert torch.allclose(spec.limit(on_axis), limit, atol=1e-12)
    assert limit.std() > 0.1  # and it does vary with the distance


@pytest.mark.parametrize("pos_dim", [1, 2, 3])
def test_radial_mixture_basis(pos_dim):
    spec = moved(RadialMixture(2, pos_dim, num_components=5)).double()
    delta = torch.randn(4, 6, pos_dim, dtype=torch.float64)
    basis = spec.basis(delta)
    assert basis.shape == (4, 6, 5)
    assert torch.allclose(spec.limit(delta), basis @ spec.weight.T, atol=1e-12)
    # each shell is a probability density in frequency space: its transform is 1 at 0
    zero = spec.basis(torch.zeros(pos_dim, dtype=torch.float64))
    assert zero.shape == (5,) and torch.allclose(zero, torch.ones(5, dtype=torch.float64))
    assert (spec.basis(10 * delta).abs() <= 1 + 1e-12).all()  # and bounded by it


def test_radial_mixture_shells_are_shared_across_heads():
    spec = RadialMixture(4, 3, num_components=6)
    assert spec.weight.shape == (4, 6)
    assert spec.width.shape == spec.radius.shape == (6,)
    assert (spec.width < spec.proposal_scale).all()
    assert (spec.radius < 2 * spec.proposal_scale).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"pos_dim": 4}, "pos_dim 1, 2 or 3"),
        ({"num_components": 0}, "num_components"),
        ({"init_width": 1.0}, "init_width"),
    ],
)
def test_radial_mixture_bad_options(kwargs, match):
    kwargs = {"pos_dim": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        RadialMixture(2, kwargs.pop("pos_dim"), **kwargs)
    if "pos_dim" in match:
        with pytest.raises(ValueError, match=match):
            make_spectrum("radial_mixture", 2, 4)


@pytest.mark.parametrize(
    "pos_dim",
    [
        1,
        2,
        3,
    ],
)
def test_radial_mixture_gradcheck_away_from_zero(pos_dim):
    spec = moved(RadialMixture(2, pos_dim, num_components=3)).double()
    delta = (0.5 + torch.rand(4, pos_dim, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(spec.limit, (delta,))
    spec.limit(delta).sum().backward()
    assert spec.radius_logit.grad is not None and spec.radius_logit.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "name",
    [
        "gaussian_mixture",
        "isotropic_mixture",
        "gaussian",
        "local",
        "radial_mixture",
    ],
)
def test_smooth_closed_forms_have_zero_gradient_at_zero(name):
    """Exact mode always evaluates f at delta = 0 (the i == j pairs); a smooth even f has a zero
    gradient there, which must not come out as NaN."""
    spec = moved(make_spectrum(name, 2, 3)).double()
    delta = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    spec.limit(delta).sum().backward()
    assert torch.equal(delta.grad, torch.zeros_like(delta))
