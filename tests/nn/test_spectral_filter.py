import math

import pytest
import torch

from flt3d.nn import (
    FLTBlock,
    FLTConv,
    GaussianMixture,
    IsotropicMixture,
    LocalRPE,
    SpectralFilter,
    set_attention,
)
from flt3d.nn.densities import RadialMixture
from flt3d.nn.graph import GraphSizes
from flt3d.testing import (
    assert_batch_independent,
    assert_permutation_equivariant,
    assert_rotation_invariant,
    assert_translation_invariant,
)


@pytest.fixture(autouse=True)
def one_thread():
    """Run on one intra-op thread: every tensor here is small, and on a busy two-core machine a
    second OpenMP thread mostly spin-waits (the rate test ran 10x slower with two)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def moved(filt: SpectralFilter, seed: int = 3, scale: float = 0.5) -> SpectralFilter:
    """Move every spectral parameter off its initial value (a non-trivial filter)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in filt.spectrum.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return filt


def reference_filter(spec, *, finite: bool = False):
    """``delta (list of D floats) -> [f_h(delta) for every head]``, written out with ``math``
    from the family's parameters (taken once, as plain floats): the closed form, or with
    ``finite`` (and for families without one) the estimate from the layer's R frequencies."""
    if finite or not spec.closed_form:  # 1/R sum_r a_r cos(2 pi xi_r . delta) + b_r sin
        xi, a, b = spec.estimate()
        a, b = a.tolist(), b.tolist()
        xi = xi.expand(len(a), -1, -1).tolist()  # frequencies shared by the heads, or not

        def f(delta):
            out = []
            for xh, ah, bh in zip(xi, a, b):
                theta = [2 * math.pi * sum(u * x for u, x in zip(xr, delta)) for xr in xh]
                terms = [ar * math.cos(t) + br * math.sin(t) for ar, br, t in zip(ah, bh, theta)]
                out.append(sum(terms) / len(terms))
            return out

    elif isinstance(spec, GaussianMixture):
        # sum_b w_hb exp(-2 pi^2 sum_d sigma_hbd^2 delta_d^2) (cos + [directional] sin)(2 pi mu.delta)
        w, mean = spec.weight.tolist(), spec.mean.tolist()
        sigma = spec.width.expand(-1, -1, spec.pos_dim).tolist()

        def f(delta):
            out = []
            for wh, sh, mh in zip(w, sigma, mean):
                total = 0.0
                for wb, sb, mb in zip(wh, sh, mh):
                    quad = sum(sd**2 * x**2 for sd, x in zip(sb, delta))
                    phase = 2 * math.pi * sum(m * x for m, x in zip(mb, delta))
                    wave = math.cos(phase) + (math.sin(phase) if spec.directional else 0.0)
                    total += wb * math.exp(-2 * math.pi**2 * quad) * wave
                out.append(total)
            return out

    elif isinstance(spec, RadialMixture):  # 3D: w_hb exp(-2 pi^2 sigma_b^2 r^2) sinc(2 mu_b r)
        assert spec.pos_dim == 3
        w, sigma, mu = spec.weight.tolist(), spec.width.tolist(), spec.radius.tolist()

        def f(delta):
            r = math.sqrt(sum(x * x for x in delta))
            shells = []
            for sb, mb in zip(sigma, mu):
                x = 2 * math.pi * mb * r
                wave = math.sin(x) / x if x > 0 else 1.0
                shells.append(math.exp(-2 * math.pi**2 * sb**2 * r**2) * wave)
            return [sum(wb * fb for wb, fb in zip(wh, shells)) for wh in w]

    else:
        raise NotImplementedError(type(spec).__name__)
    return f


@torch.no_grad()
def brute_force(filt: SpectralFilter, v, pos, batch, *, finite: bool = False):
    """out_i = sum_{j in graph(i)} f_h(r_i - r_j) v_j, one pair at a time, on raw positions."""
    f = reference_filter(filt.spectrum, finite=finite)
    n, heads, _ = v.shape
    out = torch.zeros_like(v)
    pos_list, ids = pos.tolist(), batch.tolist()
    for i in range(n):
        for j in range(n):
            if ids[i] != ids[j]:
                continue
            fij = f([a - b for a, b in zip(pos_list[i], pos_list[j])])
            for h in range(heads):
                out[i, h] += fij[h] * v[j, h]
    return out


def graph_data(graphs64):
    _, _, v, pos, batch = graphs64
    return v, pos, batch


@pytest.mark.parametrize(
    "spectrum, options",
    [
        ("isotropic_mixture", None),
        ("radial_mixture", None),
        ("gaussian_mixture", None),  # anisotropic, even
        ("gaussian_mixture", {"directional": True}),  # closed form, not even: every pair
        ("mlp", None),  # no closed form: f_hat, not even
    ],
)
def test_exact_matches_brute_force(graphs64, spectrum, options):
    v, pos, batch = graph_data(graphs64)  # graphs of 1, 4, 7 and 5 tokens, unsorted ids
    filt = SpectralFilter(
        2,
        3,
        3,
        spectrum=spectrum,
        attention="exact",
        closed_form=spectrum != "mlp",
        spectrum_options=options,
    )
    filt = moved(filt).double()
    assert filt.spectrum.even == (options is None and spectrum != "mlp")
    f = filt.filter(pos.unsqueeze(1) - pos.unsqueeze(0))
    assert f.std() > 0.05  # a filter that varies with the displacement
    out = filt(v, pos, batch)
    ref = brute_force(filt, v, pos, batch)
    assert out.shape == v.shape and out.dtype == torch.float64
    assert torch.allclose(out, ref, atol=1e-10, rtol=0)


@pytest.mark.parametrize(
    "spectrum, options",
    [
        ("isotropic_mixture", None),
        ("radial_mixture", None),
        ("gaussian_mixture", {"directional": True}),
        ("mlp", None),
    ],
)
def test_linear_is_exactly_the_sum_with_the_finite_frequency_filter(graphs64, spectrum, options):
    """For one draw of R frequencies, linear mode is sum_j f_hat(r_i - r_j) v_j exactly (the
    per-graph state of the low-rank factors loses nothing)."""
    v, pos, batch = graph_data(graphs64)
    filt = SpectralFilter(2, 3, 3, spectrum=spectrum, num_frequencies=8, spectrum_options=options)
    filt = moved(filt).double()
    out = filt(v, pos, batch)
    assert torch.allclose(out, brute_force(filt, v, pos, batch, finite=True), atol=1e-10, rtol=0)
    if filt.spectrum.closed_form:  # and f_hat is not the closed form exact mode uses
        assert not torch.allclose(out, brute_force(filt, v, pos, batch), atol=1e-3)


def test_exact_mode_uses_closed_form_and_sums_unnormalised():
    """closed_form: exact applies limit (not f_hat); one graph of identical tokens at one point
    sums n v."""
    filt = SpectralFilter(2, 3, 3, spectrum="radial_mixture", attention="exact", closed_form=True)
    filt = moved(filt).double()
    delta = torch.randn(20, 3, dtype=torch.float64)
    assert torch.equal(filt.filter(delta), filt.spectrum.limit(delta))
    assert not torch.allclose(filt.filter(delta), filt.spectrum(delta), atol=1e-3)
    v = torch.randn(1, 2, 3, dtype=torch.float64).expand(4, -1, -1)
    pos = torch.zeros(4, 3, dtype=torch.float64)
    f0 = filt.spectrum.limit(torch.zeros(3, dtype=torch.float64))  # [H]
    assert torch.allclose(filt(v, pos), 4 * f0[:, None] * v, atol=1e-12)
    # batch=None is one graph
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    p = torch.randn(6, 3, dtype=torch.float64)
    assert torch.equal(filt(x, p), filt(x, p, torch.zeros(6, dtype=torch.long)))


def tame(filt: SpectralFilter, seed: int = 4) -> SpectralFilter:
    """Widths in (0.5 s, 0.9 s): the estimator's relative kurtosis grows like (s / sigma)^D, so
    narrow components make the squared error of a few dozen draws too heavy-tailed to measure
    its rate (the variance stays finite, the weights bounded)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        logit = filt.spectrum.width_logit
        ratio = 0.5 + 0.4 * torch.rand(logit.shape, generator=gen, dtype=torch.float64)
        logit.copy_(torch.log(ratio) - torch.log1p(-ratio))
    return filt


@pytest.mark.parametrize("spectrum", ["isotropic_mixture", "radial_mixture"])
def test_linear_is_unbiased_and_error_decays_like_inverse_sqrt_r(graphs64, spectrum):
    """Over independent frequency draws linear mode averages to exact mode; RMSE ~ R^(-1/2).

    Calibration over 200 draw seeds with these parameters: slope -0.50 +- 0.02 (range
    -0.56 .. -0.45), max |z| over the 102 outputs at most 4.5, RMSE at R = 1024 at most 5%.
    """
    v, pos, batch = graph_data(graphs64)
    ref = SpectralFilter(2, 3, 3, spectrum=spectrum, attention="exact", closed_form=True)
    ref = tame(moved(ref)).double()
    exact = ref(v, pos, batch)
    state = {k: t for k, t in ref.state_dict().items() if not k.endswith("frequencies")}
    gen = torch.Generator().manual_seed(0)
    rs, draws_per_r, rmse = [16, 64, 256, 1024], [30, 30, 30, 100], []
    for r, num_draws in zip(rs, draws_per_r):
        filt = SpectralFilter(2, 3, 3, spectrum=spectrum, num_frequencies=r).double()
        missing, unexpected = filt.load_state_dict(state, strict=False)
        assert missing == ["spectrum.frequencies"] and not unexpected
        assert filt.spectrum.frequencies.shape == (2, r, 3)
        draws = []
        for _ in range(num_draws):
            filt.spectrum.redraw_frequencies(generator=gen)
            draws.append(filt(v, pos, batch))
        draws = torch.stack(draws)
        rmse.append((draws - exact).pow(2).mean().sqrt().item())
    # unbiased: each output's mean over 100 draws at R = 1024 within Bonferroni bounds
    # (t with 99 dof, 102 outputs, family-wise 1e-4: 5.2; correlated outputs make it conservative)
    z = (draws.mean(0) - exact) / (draws.std(0) / math.sqrt(draws.shape[0]))
    assert z.abs().max() < 5.2, z.abs().max()
    slope = (
        torch.linalg.lstsq(
            torch.tensor([[math.log(r), 1.0] for r in rs], dtype=torch.float64),
            torch.tensor(rmse, dtype=torch.float64).log().unsqueeze(1),
        )
        .solution[0]
        .item()
    )
    assert -0.6 < slope < -0.4, (slope, rmse)
    assert rmse[-1] < 0.15 * exact.pow(2).mean().sqrt()  # the estimate is usable at R = 1024


@pytest.mark.parametrize("attention", ["linear", "exact"])
@pytest.mark.parametrize("spectrum", ["isotropic_mixture", "radial_mixture", "gaussian_mixture"])
def test_invariances(graphs64, attention, spectrum):
    v, pos, batch = graph_data(graphs64)
    filt = moved(SpectralFilter(2, 3, 3, spectrum=spectrum, attention=attention)).double()
    assert_translation_invariant(filt, v, pos, batch, shift=1e3)
    assert_permutation_equivariant(filt, v, pos, batch)
    assert_batch_independent(filt, v, pos, batch)


@pytest.mark.parametrize("spectrum", ["isotropic_mixture", "radial_mixture"])
def test_exact_mode_is_rotation_invariant(graphs64, spectrum):
    v, pos, batch = graph_data(graphs64)
    filt = SpectralFilter(2, 3, 3, spectrum=spectrum, attention="exact", closed_form=True)
    filt = moved(filt).double()
    assert_rotation_invariant(filt, v, pos, batch)
    filt.attention = "linear"  # f_hat of one frequency draw is not isotropic: the check bites
    with pytest.raises(AssertionError, match="rotation"):
        assert_rotation_invariant(filt, v, pos, batch)


def test_anisotropic_exact_mode_is_not_rotation_invariant(graphs64):
    v, pos, batch = graph_data(graphs64)
    filt = moved(SpectralFilter(2, 3, 3, spectrum="gaussian_mixture", attention="exact"))
    with pytest.raises(AssertionError, match="rotation"):
        assert_rotation_invariant(filt.double(), v, pos, batch)


@pytest.mark.parametrize(
    "attention, spectrum",
    [
        ("linear", "isotropic_mixture"),
        ("exact", "isotropic_mixture"),
        ("linear", "radial_mixture"),
        ("exact", "radial_mixture"),
        ("exact", "gaussian_mixture"),
    ],
)
def test_gradcheck(attention, spectrum):
    gen = torch.Generator().manual_seed(2)
    n = 5
    filt = moved(
        SpectralFilter(
            2,
            2,
            3,
            spectrum=spectrum,
            attention=attention,
            num_frequencies=4,
            spectrum_options={"num_components": 3},
        )
    ).double()
    v = torch.randn(n, 2, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    pos = torch.randn(n, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    batch = torch.tensor([1, 0, 1, 0, 1])
    assert torch.autograd.gradcheck(lambda v, p: filt(v, p, batch), (v, pos))


@pytest.mark.parametrize(
    "spectrum",
    [
        "isotropic_mixture",
        "radial_mixture",
    ],
)
def test_exact_mode_gradient_is_finite_for_coincident_tokens(spectrum):
    """Two tokens of a graph at the same point (a valid input) must not poison the gradient."""
    filt = SpectralFilter(2, 3, 3, spectrum=spectrum, attention="exact", closed_form=True)
    filt = moved(filt).double()
    pos = torch.randn(5, 3, dtype=torch.float64)
    pos[3] = pos[1]
    pos.requires_grad_()
    v = torch.randn(5, 2, 3, dtype=torch.float64)
    filt(v, pos, torch.tensor([0, 1, 0, 1, 1])).pow(2).sum().backward()
    assert torch.isfinite(pos.grad).all()


@pytest.mark.parametrize("attention", ["linear", "exact"])
@pytest.mark.parametrize("spectrum", ["isotropic_mixture", "radial_mixture"])
def test_gradients_reach_every_spectral_parameter(attention, spectrum):
    filt = moved(SpectralFilter(2, 3, 3, spectrum=spectrum, attention=attention)).double()
    v = torch.randn(7, 2, 3, dtype=torch.float64)
    pos = 1.5 * torch.randn(7, 3, dtype=torch.float64)
    filt(v, pos, torch.tensor([0, 0, 0, 1, 1, 1, 1])).pow(2).sum().backward()
    for name, p in filt.spectrum.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_repr_and_attention_switch():
    filt = SpectralFilter(2, 3, 3)
    assert filt.attention == "linear"
    assert repr(filt) == "SpectralFilter(heads=2, head_channels=3, pos_dim=3, attention='linear')"
    filt.attention = "exact"
    assert filt.attention == "exact"
    with pytest.raises(ValueError, match="attention must be one of"):
        filt.attention = "quadratic"
    assert filt.attention == "exact"


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda f, v, p, b: f(v[:, :1], p, b), r"v must be \[N, 2, 3\]"),
        (lambda f, v, p, b: f(v[..., :2], p, b), r"v must be \[N, 2, 3\]"),
        (lambda f, v, p, b: f(v.flatten(1), p, b), r"v must be \[N, 2, 3\]"),
        (lambda f, v, p, b: f(v, p[:, :2], b), r"pos must be \[N, 3\]"),
        (lambda f, v, p, b: f(v, p[:-1], b), r"pos must be \[N, 3\] = \[6, 3\]"),
        (lambda f, v, p, b: f(v, p.unsqueeze(0), b), r"pos must be \[N, 3\]"),
        (lambda f, v, p, b: f(v, p, b[:-1]), "batch must be"),
    ],
)
def test_bad_input(call, match):
    filt = SpectralFilter(2, 3, 3)
    v = torch.randn(6, 2, 3)
    pos = torch.randn(6, 3)
    batch = torch.tensor([0, 0, 0, 1, 1, 1])
    with pytest.raises(ValueError, match=match):
        call(filt, v, pos, batch)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"spectrum": None}, "needs a spectrum"),
        ({"spectrum": "wavelet"}, "spectrum must be one of"),
        ({"attention": "dense"}, "attention must be one of"),
        ({"num_frequencies": 0}, "num_frequencies must be positive"),
        ({"length_scale": 0.0}, "length_scale"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SpectralFilter(2, 3, 3, **kwargs)


def test_radial_filter_needs_pos_dim_at_most_3():
    with pytest.raises(ValueError, match="pos_dim"):
        SpectralFilter(2, 3, 4, spectrum="radial_mixture")


# FLTConv with the spectral filter branch


def test_conv_filter_shapes_and_options():
    conv = FLTConv(16, 32, heads=4, spectral_filter=True)
    assert isinstance(conv.filter, SpectralFilter)
    assert (conv.filter.heads, conv.filter.head_channels) == (4, 8)
    assert conv.qkv.out_features == 4 * 32 and conv.out.in_features == 2 * 32
    out = conv(torch.randn(10, 16), torch.randn(10, 3), torch.tensor([1] * 4 + [0] * 6))
    assert out.shape == (10, 32)
    conv2 = FLTConv(
        16,
        32,
        heads=4,
        spectral_filter=True,
        filter_heads=2,
        num_frequencies=8,
        length_scale=0.5,
        spectrum="local",
    )
    assert (conv2.filter.heads, conv2.filter.head_channels) == (2, 16)
    assert conv2.filter.spectrum.num_frequencies == 8
    assert conv2.filter.spectrum.length_scale == 0.5
    assert isinstance(conv2.filter.spectrum, LocalRPE)  # follows the attention's spectrum
    assert conv2(torch.randn(10, 16), torch.randn(10, 3)).shape == (10, 32)
    conv3 = FLTConv(16, 32, heads=4, spectral_filter=True, filter_spectrum="radial_mixture")
    assert isinstance(conv3.filter.spectrum, RadialMixture)
    conv4 = FLTConv(16, 32, heads=4, spectral_filter=True, spectrum=None)
    assert isinstance(conv4.filter.spectrum, IsotropicMixture) and conv4.attn.spectrum is None
    assert FLTConv(16, 32, heads=4).filter is None


def test_conv_set_attention_switches_filter_too():
    conv = FLTConv(8, 8, heads=2, spectral_filter=True)
    assert conv.attn.attention == conv.filter.attention == "linear"
    set_attention(conv, "exact")
    assert conv.attn.attention == conv.filter.attention == "exact"
    conv.attention = "linear"
    assert conv.attn.attention == conv.filter.attention == "linear"
    block = FLTBlock(8, heads=2, spectral_filter=True, attention="exact")
    assert block.conv.filter.attention == "exact"
    set_attention(block, "linear")
    assert block.conv.attn.attention == block.conv.filter.attention == "linear"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"filter_heads": 3}, "filter_heads must divide heads \\* head_channels = 8"),
        ({"filter_heads": 0}, "filter_heads must divide"),
        ({"causal": True}, "causal"),
    ],
)
def test_conv_filter_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FLTConv(8, 8, heads=2, spectral_filter=True, **kwargs)
    if "causal" not in kwargs:  # the option only matters with the filter branch
        FLTConv(8, 8, heads=2, **kwargs)


@pytest.mark.parametrize("attention", ["linear", "exact"])
def test_conv_output_is_attention_plus_filter_branch(attention):
    """W_o reads [attention, filter]: zero the filter's columns and it is the plain layer."""
    torch.manual_seed(5)
    conv = FLTConv(
        8, 6, heads=2, head_channels=4, spectral_filter=True, filter_heads=1, attention=attention
    )
    conv = conv.double()
    moved(conv.filter)
    plain = FLTConv(8, 6, heads=2, head_channels=4, attention=attention).double()
    c = 2 * 4  # heads * head_channels
    with torch.no_grad():
        plain.qkv.weight.copy_(conv.qkv.weight[: 3 * c])
        plain.qkv.bias.copy_(conv.qkv.bias[: 3 * c])
        plain.out.weight.copy_(conv.out.weight[:, :c])
        plain.out.bias.copy_(conv.out.bias)
    plain.attn.load_state_dict(conv.attn.state_dict())
    x = torch.randn(9, 8, dtype=torch.float64)
    pos = 1.5 * torch.randn(9, 3, dtype=torch.float64)
    batch = torch.tensor([0, 1, 0, 1, 1, 0, 2, 1, 0])
    out = conv(x, pos, batch)
    u = (x @ conv.qkv.weight[3 * c :].T + conv.qkv.bias[3 * c :]).view(9, 1, c)
    branch = conv.filter(u, pos, batch).flatten(1) @ conv.out.weight[:, c:].T
    assert branch.norm() > 0.1 * out.norm()  # the branch matters
    assert torch.allclose(out, plain(x, pos, batch) + branch, atol=1e-12)
    with torch.no_grad():
        conv.out.weight[:, c:] = 0.0
    assert torch.allclose(conv(x, pos, batch), plain(x, pos, batch), atol=1e-12)


@pytest.mark.parametrize("attention", ["linear", "exact"])
def test_conv_with_filter_batched_equals_one_by_one(attention):
    conv = FLTConv(8, 8, heads=2, spectral_filter=True, attention=attention).double()
    x = torch.randn(12, 8, dtype=torch.float64)
    pos = torch.randn(12, 3, dtype=torch.float64)
    batch = torch.tensor([0] * 5 + [1] + [2] * 6)
    assert_batch_independent(conv, x, pos, batch)
    assert_permutation_equivariant(conv, x, pos, batch)
    assert_translation_invariant(conv, x, pos, batch)
    conv(x, pos, batch).pow(2).sum().backward()
    assert conv.filter.spectrum.weight.grad.abs().sum() > 0


# local filters: the closed form times a cosine envelope, exact in both modes


@pytest.mark.parametrize("spectrum", ["radial_basis", "isotropic_mixture", "gaussian_mixture"])
def test_local_filter_is_the_same_function_in_both_modes(graphs64, spectrum):
    from flt3d.nn import cosine_cutoff

    v, pos, batch = graph_data(graphs64)
    filt = SpectralFilter(2, 3, 3, spectrum=spectrum, cutoff=2.0, length_scale=0.2)
    filt = moved(filt).double()
    delta = pos.unsqueeze(1) - pos.unsqueeze(0)
    f = filt.filter(delta)
    envelope = cosine_cutoff(delta.norm(dim=-1), 2.0).unsqueeze(-1)
    assert torch.allclose(f, filt.spectrum.limit(delta) * envelope, atol=1e-14)
    assert f[delta.norm(dim=-1) > 2.0].abs().max() == 0
    linear = filt(v, pos, batch)
    filt.attention = "exact"
    exact = filt(v, pos, batch)
    assert torch.allclose(linear, exact, atol=1e-12)
    same = (batch.unsqueeze(1) == batch.unsqueeze(0)).unsqueeze(-1)
    ref = torch.einsum("ijh,jhd->ihd", f * same, v)
    assert torch.allclose(exact, ref, atol=1e-12)


def test_local_filter_neighbour_list_path_matches_pairs(graphs64, monkeypatch):

    v, pos, batch = graph_data(graphs64)
    filt = moved(SpectralFilter(2, 3, 3, spectrum="radial_basis", cutoff=2.5)).double()
    dense = filt(v, pos, batch)
    monkeypatch.setattr(GraphSizes, "small", lambda self, **kwargs: False)
    assert torch.allclose(filt(v, pos, batch), dense, atol=1e-12)


def test_local_filter_is_exactly_rotation_invariant_in_linear_mode(graphs64):
    v, pos, batch = graph_data(graphs64)
    filt = moved(SpectralFilter(2, 3, 3, spectrum="radial_basis", cutoff=2.5)).double()

    def fn(x, p, b):
        return filt(x, p, b)

    assert_rotation_invariant(fn, v, pos, batch, atol=1e-10)
    assert_translation_invariant(fn, v, pos, batch, atol=1e-10)
    assert_permutation_equivariant(fn, v, pos, batch, atol=1e-10)
    assert_batch_independent(fn, v, pos, batch, atol=1e-10)


def test_local_filter_gradcheck():
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(6, 2, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    pos = torch.randn(6, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    filt = moved(SpectralFilter(2, 2, 3, spectrum="radial_basis", cutoff=1.5)).double()
    assert torch.autograd.gradcheck(lambda a, b: filt(a, b), (v, pos))


def test_shared_frequency_filter_is_the_finite_frequency_sum(graphs64):
    """radial_basis with draws from its envelopes shares one set of frequencies across heads;
    linear mode is then exactly the sum with that f_hat, and exact mode (f_hat) equals it."""
    v, pos, batch = graph_data(graphs64)
    filt = SpectralFilter(
        2, 3, 3, spectrum="radial_basis", num_frequencies=32, sampler="density", nodes="quadrature"
    )
    filt = moved(filt).double()
    assert filt.spectrum.frequencies.shape[0] == 1
    out = filt(v, pos, batch)
    assert torch.allclose(out, brute_force(filt, v, pos, batch, finite=True), atol=1e-10)
    filt.attention = "exact"
    assert torch.allclose(filt(v, pos, batch), out, atol=1e-10)


def test_radial_basis_linear_converges_to_its_closed_form(graphs64):
    """Every family FLTNet uses converges: radial_basis bumps (mass ~ 2c^2/w^2, the reason its
    default is local) still fall like R^(-1/2) in RMS over fresh draws."""
    v, pos, batch = graph_data(graphs64)
    options = {"max_radius": 2.0, "num_components": 4}
    ref = SpectralFilter(2, 3, 3, spectrum="radial_basis", closed_form=True, attention="exact",
                         length_scale=0.3, spectrum_options=options)
    ref = moved(ref, scale=0.2).double()
    exact = ref(v, pos, batch)
    state = {k: t for k, t in ref.state_dict().items() if not k.endswith("frequencies")}
    rmse = []
    for r in (16, 256, 4096):
        filt = SpectralFilter(2, 3, 3, spectrum="radial_basis", num_frequencies=r,
                              length_scale=0.3, spectrum_options=options).double()
        filt.load_state_dict(state, strict=False)
        gen = torch.Generator().manual_seed(0)
        sq = []
        for _ in range(20):
            filt.spectrum.redraw_frequencies(generator=gen)
            sq.append((filt(v, pos, batch) - exact).pow(2).mean())
        rmse.append(torch.stack(sq).mean().sqrt().item() / exact.pow(2).mean().sqrt().item())
    slope = math.log(rmse[-1] / rmse[0]) / math.log(256)
    assert -0.65 < slope < -0.35, (slope, rmse)
