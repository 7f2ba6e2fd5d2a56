import math

import pytest
import torch

from flt3d.nn import FLTAttention
from flt3d.nn.graph import GraphSizes
from flt3d.testing import (
    assert_batch_independent,
    assert_permutation_equivariant,
    assert_rotation_invariant,
    assert_translation_invariant,
)


def moved(att: FLTAttention, seed: int = 3, scale: float = 0.5) -> FLTAttention:
    """Move every spectral parameter off its initial value (a non-trivial RPE)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in att.spectrum.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return att


def same_spectrum(att: FLTAttention, ref: FLTAttention) -> FLTAttention:
    if ref.spectrum is not None:
        att.spectrum.load_state_dict(ref.spectrum.state_dict())
    return att


def brute_force(att, q, k, v, pos, batch):
    """The class formula, one query and one key at a time."""
    n, h, d = q.shape
    out = torch.zeros_like(v)
    for i in range(n):
        for head in range(h):
            num, den = torch.zeros_like(v[0, 0]), 0.0
            for j in range(n):
                if batch[j] != batch[i] or (
                    att.causal and (batch[:j] == batch[i]).sum() > (batch[:i] == batch[i]).sum()
                ):
                    continue
                logit = float(q[i, head] @ k[j, head]) / math.sqrt(d)
                f = float(att.rpe(pos[i] - pos[j])[head].detach())
                w = math.exp(logit + f) if att.mask == "exp" else math.exp(logit) * f
                num, den = num + w * v[j, head], den + w
            out[i, head] = num / den
    return out


@pytest.mark.parametrize("mask", ["exp", "mul"])
@pytest.mark.parametrize("causal", [False, True])
def test_exact_matches_brute_force(graphs64, mask, causal):
    q, k, v, pos, batch = graphs64
    att = moved(FLTAttention(2, 3, 3, mask=mask, causal=causal, attention="exact")).double()
    out = att(q, k, v, pos, batch)
    ref = brute_force(att, q, k, v, pos, batch)
    assert torch.allclose(out, ref, atol=1e-8, rtol=0)


@pytest.mark.parametrize("spectrum", [None, "gaussian_mixture", "local", "mlp"])
def test_linear_tends_to_exact_as_features_grow(graphs64, spectrum):
    """Output error against exact mode falls as m grows, on a non-trivial RPE.

    The kernel estimate itself decays like m^(-1/2) (next test); the normalised output is a
    ratio of two estimates and, for strong RPEs (spectral mass A of 2-4 here), the FAVOR+
    variance factor ~exp(|x + y|^2) delays that rate beyond m = 1024: here the bar is a fall
    by at least 35% over 64x the features and a negative log-log slope.
    """
    q, k, v, pos, batch = graphs64
    ref_att = FLTAttention(2, 3, 3, spectrum=spectrum, attention="exact").double()
    if spectrum is not None:
        moved(ref_att)
    exact = ref_att(q, k, v, pos, batch)
    ms, errors = [16, 64, 256, 1024], []
    gen = torch.Generator().manual_seed(0)
    for m in ms:
        att = FLTAttention(2, 3, 3, spectrum=spectrum, num_features=m).double()
        same_spectrum(att, ref_att)
        sq = []
        for _ in range(20):
            att.redraw_features(generator=gen)
            sq.append((att(q, k, v, pos, batch) - exact).pow(2).mean())
        errors.append(torch.stack(sq).mean().sqrt().item())
    slope = (
        torch.linalg.lstsq(
            torch.tensor([[math.log(m), 1.0] for m in ms]), torch.tensor(errors).log().unsqueeze(1)
        )
        .solution[0]
        .item()
    )
    assert errors[-1] < 0.65 * errors[0], errors
    assert -0.75 < slope < -0.1, (slope, errors)
    if spectrum is None:  # no RPE: the m^(-1/2) rate shows already
        assert slope < -0.3, (slope, errors)


def test_rpe_is_not_trivial_after_moving():
    att = moved(FLTAttention(2, 3, 3))
    f = att.rpe(torch.randn(50, 3))
    assert f.std() > 0.05


@pytest.mark.parametrize("mask", ["exp", "mul"])
def test_kernel_estimate_unbiased_and_error_decays(mask):
    """Mean over feature redraws within 3 standard errors of the exact kernel; RMSE ~ m^-1/2.

    The spectral mass is set to A = 0.4: the positive features' relative variance grows like
    exp(|x + y|^2) with |psi_Q + psi_K|^2 up to 4A, so for A >= 1 the error is heavy-tailed and
    a few dozen draws cannot measure its decay reliably (see the output test for strong RPEs).
    """
    gen = torch.Generator().manual_seed(5)
    n = 6
    q = 0.4 * torch.randn(n, 1, 4, generator=gen, dtype=torch.float64)
    k = 0.4 * torch.randn(n, 1, 4, generator=gen, dtype=torch.float64)
    pos = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    att = moved(FLTAttention(1, 4, 3, mask=mask, num_features=32), scale=0.25).double()
    with torch.no_grad():
        att.spectrum.weight.mul_(0.4 / att.spectrum.mass())
    assert att.rpe(pos.unsqueeze(1) - pos.unsqueeze(0)).std() > 0.05  # a non-trivial RPE
    att.attention = "exact"
    exact = att.kernel(q, k, pos)
    att.attention = "linear"
    draws = []
    for _ in range(400):
        att.redraw_features(generator=gen)
        draws.append(att.kernel(q, k, pos))
    draws = torch.stack(draws)
    se = draws.std(0) / math.sqrt(draws.shape[0])
    z = (draws.mean(0) - exact) / se
    assert z.abs().max() < 4.0, z.abs().max()  # 36 entries: a 4-sigma miss is a ~0.2% event
    assert (z.abs() < 3).float().mean() > 0.9
    rmse = []
    for m in (16, 64, 256, 1024):
        att_m = FLTAttention(1, 4, 3, mask=mask, num_features=m).double()
        same_spectrum(att_m, att)
        errs = []
        for _ in range(60):
            att_m.redraw_features(generator=gen)
            errs.append((att_m.kernel(q, k, pos) - exact).pow(2).mean())
        rmse.append(torch.stack(errs).mean().sqrt().item() / exact.pow(2).mean().sqrt().item())
    ms = torch.tensor([16.0, 64.0, 256.0, 1024.0]).log()
    slope = (
        torch.linalg.lstsq(
            torch.stack([ms, torch.ones(4)], 1), torch.tensor(rmse).log().unsqueeze(1)
        )
        .solution[0]
        .item()
    )
    assert -0.65 < slope < -0.35, (slope, rmse)  # m^(-1/2)
    assert 4 < rmse[0] / rmse[-1] < 14, rmse  # 64x the features: ideally 8x less error


@pytest.mark.parametrize("attention", ["linear", "exact"])
@pytest.mark.parametrize("mask", ["exp", "mul"])
def test_invariances(graphs64, attention, mask):
    q, k, v, pos, batch = graphs64
    att = moved(FLTAttention(2, 3, 3, mask=mask, attention=attention)).double()

    def fn(x, p, b):
        return att(x[:, :, :3], x[:, :, 3:6], x[:, :, 6:], p, b)

    x = torch.cat([q, k, v], dim=-1)
    assert_translation_invariant(fn, x, pos, batch, shift=1e3)
    assert_permutation_equivariant(fn, x, pos, batch)
    assert_batch_independent(fn, x, pos, batch)


def test_translation_changes_output_without_centring_check(graphs64):
    """The invariance check can fail: a layer that reads absolute positions is caught."""
    q, k, v, pos, batch = graphs64
    att = FLTAttention(2, 3, 3).double()

    def absolute(x, p, b):
        return att(x, x, x, p, b) + p[:, :1, None]

    with pytest.raises(AssertionError, match="translation"):
        assert_translation_invariant(absolute, q, pos, batch)


@pytest.mark.parametrize("attention", ["linear", "exact"])
@pytest.mark.parametrize("mask", ["exp", "mul"])
@pytest.mark.parametrize("causal", [False, True])
def test_gradcheck(attention, mask, causal):
    gen = torch.Generator().manual_seed(2)
    n = 5
    att = moved(
        FLTAttention(
            1,
            2,
            2,
            mask=mask,
            attention=attention,
            causal=causal,
            num_features=8,
            num_frequencies=4,
        )
    ).double()
    q, k, v = (
        torch.randn(n, 1, 2, generator=gen, dtype=torch.float64, requires_grad=True)
        for _ in range(3)
    )
    pos = torch.randn(n, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    batch = torch.tensor([0, 0, 1, 1, 1])
    assert torch.autograd.gradcheck(lambda *a: att(*a, batch), (q, k, v, pos))


@pytest.mark.parametrize("attention", ["linear", "exact"])
def test_float32_matches_float64(graphs64, attention):
    q, k, v, pos, batch = graphs64
    att = moved(FLTAttention(2, 3, 3, attention=attention)).double()
    out64 = att(q, k, v, pos, batch)
    out32 = att.float()(q.float(), k.float(), v.float(), pos.float(), batch)
    assert out32.dtype == torch.float32
    # linear mode: feature exponents of size ~10-30 carry float32 rounding of ~1e-6 each
    assert torch.allclose(out32.double(), out64, atol=1e-4 if attention == "exact" else 5e-4)


def test_causal_future_does_not_leak():
    gen = torch.Generator().manual_seed(0)
    n = 9
    q, k, v = (torch.randn(n, 2, 3, generator=gen) for _ in range(3))
    pos = torch.arange(n, dtype=torch.float32).unsqueeze(1)
    for attention in ("linear", "exact"):
        att = FLTAttention(2, 3, 1, causal=True, attention=attention, spectrum="local")
        out = att(q, k, v, pos)
        k2, v2 = k.clone(), v.clone()
        k2[5:] += 3.0
        v2[5:] -= 1.0
        out2 = att(q, k2, v2, pos)
        assert torch.equal(out[:5], out2[:5]), attention
        assert not torch.allclose(out[5:], out2[5:])


def test_attention_switch_and_repr():
    att = FLTAttention(2, 3, 3)
    att.attention = "exact"
    assert att.attention == "exact"
    assert "FLTAttention(heads=2" in repr(att)
    with pytest.raises(ValueError, match="attention"):
        att.attention = "quadratic"


def test_no_spectrum_is_plain_favor():
    att = FLTAttention(2, 3, 3, spectrum=None)
    assert att.spectrum is None and att.feature_dim == 3
    assert torch.equal(att.rpe(torch.randn(4, 3)), torch.zeros(4, 2))
    att_mul = FLTAttention(2, 3, 3, spectrum=None, mask="mul")
    assert torch.equal(att_mul.rpe(torch.randn(4, 3)), torch.ones(4, 2))


def test_mul_mask_is_nonnegative_for_every_draw():
    att = moved(FLTAttention(4, 3, 3, mask="mul", num_frequencies=4))
    for _ in range(20):
        att.redraw_frequencies()
        assert att.rpe(10 * torch.randn(200, 3)).min() >= 0


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("spectrum", ["gaussian_mixture", "isotropic_mixture", "local", "mlp"])
def test_mul_mask_linear_normaliser_is_positive_for_every_draw(monkeypatch, spectrum, causal):
    """Linear mode, ``mask="mul"``: the normaliser each output row is divided by (its estimated
    sum of weights) is positive for every draw of random features and frequencies, with
    strong moved spectra, large queries and keys and far-apart coordinates, in float32 and
    float64; no estimated weight is negative (:meth:`FLTAttention.kernel`, in float64) and the
    output is finite.

    The normaliser is read where the layer computes it: the last column of the linear
    attention's sums (bidirectional), and of each causal chunk's prefix sums.
    """
    import flt3d.nn.attention as functional
    import flt3d.nn.causal_attention as causal
    import flt3d.nn.flt_attention as module

    normalisers = []

    def recording_linear(phi_q, phi_k, v, batch, num_graphs, **options):
        sums = functional.linear_attention_sums(phi_q, phi_k, v, batch, num_graphs, **options)
        normalisers.append(sums[..., -1])
        return functional.linear_attention(phi_q, phi_k, v, batch, num_graphs, **options)

    chunk = causal._causal_chunk

    def recording_chunk(*args):
        out, state, peak = chunk(*args)
        normalisers.append(out[..., -1])
        return out, state, peak

    monkeypatch.setattr(module, "linear_attention", recording_linear)
    monkeypatch.setattr(causal, "_causal_chunk", recording_chunk)

    gen = torch.Generator().manual_seed(7)
    n, h, d = 40, 4, 3
    batch = torch.arange(n) // 25  # two graphs, of 25 and 15 tokens
    checked = 0
    for dtype in (torch.float32, torch.float64):
        for spread in (0.5, 2.0):  # how far the spectral parameters are moved
            att = FLTAttention(
                h, d, 3, spectrum=spectrum, mask="mul", causal=causal, num_features=8,
                num_frequencies=4,
            )  # fmt: skip
            att = moved(att, seed=int(10 * spread), scale=spread).to(dtype)
            for scale, extent in ((1.0, 1.0), (5.0, 1.0), (1.0, 50.0), (5.0, 50.0)):
                q = scale * torch.randn(n, h, d, generator=gen, dtype=dtype)
                k = scale * torch.randn(n, h, d, generator=gen, dtype=dtype)
                v = torch.randn(n, h, d, generator=gen, dtype=dtype)
                pos = extent * torch.randn(n, 3, generator=gen, dtype=dtype)
                for _ in range(5):
                    att.redraw_features(generator=gen)
                    att.redraw_frequencies(generator=gen)
                    normalisers.clear()
                    with torch.no_grad():
                        out = att(q, k, v, pos, batch)
                    assert normalisers, "the normaliser was not read"
                    for z in normalisers:
                        assert bool((z > 0).all()), (spectrum, dtype, spread, scale, extent)
                    assert bool(torch.isfinite(out).all())
                    checked += 1
                    if dtype == torch.float64:
                        # every estimated weight of the first graph, dense and unshifted (in
                        # float32 these under- and overflow for the large queries and keys)
                        with torch.no_grad():
                            w = att.kernel(q[:25], k[:25], pos[:25])
                        assert bool((w >= 0).all()) and bool(torch.isfinite(w).all())
                        assert bool((w.sum(1) > 0).all())
            # the dense weights are the ones the output is normalised by
            if not causal and dtype == torch.float64:
                ref = torch.einsum("ijh,jhe->ihe", w, v[:25]) / w.sum(1).unsqueeze(-1)
                assert torch.allclose(out[:25], ref, rtol=1e-9, atol=1e-12)
    assert checked == 2 * 2 * 4 * 5


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda a, q, p, b: a(q[:, :1], q, q, p, b), r"q must be \[N, 2, 3\]"),
        (lambda a, q, p, b: a(q, q[:-1], q, p, b), "same N"),
        (lambda a, q, p, b: a(q, q, q.flatten(1), p, b), r"v must be \[N, 2, 3\]"),
        (lambda a, q, p, b: a(q, q, q, p[:, :2], b), r"pos must be \[N, 3\]"),
        (lambda a, q, p, b: a(q, q, q, p[:-1], b), "pos must have N"),
        (lambda a, q, p, b: a(q, q, q, p.clone().fill_(float("nan")), b), "NaN"),
        (lambda a, q, p, b: a(q, q, q, p.clone().fill_(float("inf")), b), "NaN or infinite"),
        (lambda a, q, p, b: a(q, q, q, p, b[:-1]), "batch must be"),
        (lambda a, q, p, b: a(q, q, q, p, b.int()), "dtype torch.long"),
        (lambda a, q, p, b: a(q, q, q, p, b.float()), "dtype torch.long"),
        (lambda a, q, p, b: a(q, q, q, p, b - 5), "non-negative"),
        (lambda a, q, p, b: a(q, q, q, p.long(), b), "floating"),
        (lambda a, q, p, b: a.rpe(p[:, :2]), r"delta must be \[..., 3\]"),
    ],
)
def test_bad_input(call, match):
    att = FLTAttention(2, 3, 3)
    q = torch.randn(6, 2, 3)
    pos = torch.randn(6, 3)
    batch = torch.tensor([0, 0, 0, 1, 1, 1])
    with pytest.raises(ValueError, match=match):
        call(att, q, pos, batch)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"spectrum": "fourier"}, "spectrum must be one of"),
        ({"mask": "add"}, "mask must be one of"),
        ({"attention": "dense"}, "attention must be one of"),
        ({"num_features": 0}, "must be positive"),
        ({"length_scale": -1.0}, "length_scale"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FLTAttention(2, 3, 3, **kwargs)


@pytest.mark.parametrize("spectrum", ["local", "gaussian_mixture", "mlp"])
def test_1d_grid_rpe_depends_on_offset_only(spectrum):
    """On a sequence grid, exact attention's RPE is a function of i - j: a Toeplitz matrix."""
    from flt3d.datasets.grid import sequence_grid

    pos, batch = sequence_grid(2, 12, dtype=torch.float64)
    att = moved(FLTAttention(2, 3, 1, spectrum=spectrum, attention="exact")).double()
    zeros = torch.zeros(12, 2, 3, dtype=torch.float64)
    weights = att.kernel(zeros, zeros, pos[:12])  # exp(rpe(r_i - r_j)) with q = k = 0
    for offset in range(-11, 12):
        diagonal = torch.diagonal(weights, offset=offset)  # [H, 12 - |offset|]
        assert torch.allclose(diagonal, diagonal[:, :1].expand_as(diagonal), atol=1e-12)
    assert not torch.allclose(weights[0, 1], weights[0, 5])  # and it does vary with i - j
    q = torch.randn(24, 2, 3, dtype=torch.float64)
    out = att(q, q, q, pos, batch)
    shifted = att(q, q, q, pos + torch.where(batch == 0, 37.0, -5.0).unsqueeze(1), batch)
    assert torch.allclose(out, shifted, atol=1e-12)


@pytest.mark.parametrize("mask", ["exp", "mul"])
@pytest.mark.parametrize("causal", [False, True])
def test_dense_and_pair_paths_agree(graphs64, mask, causal):
    """Exact mode's two layouts (dense with masked keys, pair list) give the same output."""
    q, k, v, pos, batch = graphs64
    att = moved(FLTAttention(2, 3, 3, mask=mask, causal=causal, attention="exact")).double()
    att.dense_waste = 0.0  # pairs
    pairs = att(q, k, v, pos, batch)
    att.dense_waste = float("inf")  # dense
    dense = att(q, k, v, pos, batch)
    assert torch.allclose(dense, pairs, atol=1e-12, rtol=0)
    assert torch.allclose(dense, brute_force(att, q, k, v, pos, batch), atol=1e-8, rtol=0)


# closed_form_rpe: exact mode applies the spectrum's closed form f instead of f_hat


def closed_form_att(spectrum: str, **kwargs) -> FLTAttention:
    kwargs.setdefault("attention", "exact")
    return moved(FLTAttention(2, 3, 3, spectrum=spectrum, closed_form_rpe=True, **kwargs)).double()


@pytest.mark.parametrize("spectrum", ["isotropic_mixture", "radial_mixture", "gaussian_mixture"])
@pytest.mark.parametrize("causal", [False, True])
def test_closed_form_rpe_matches_brute_force(graphs64, spectrum, causal):
    q, k, v, pos, batch = graphs64
    att = closed_form_att(spectrum, causal=causal)
    delta = pos.unsqueeze(1) - pos.unsqueeze(0)
    # brute_force reads att.rpe: it must be the closed form, not the finite-frequency f_hat
    assert torch.equal(att.rpe(delta), att.spectrum.limit(delta))
    assert not torch.allclose(att.rpe(delta), att.spectrum(delta), atol=1e-3)
    assert "closed_form_rpe=True" in repr(att)
    out = att(q, k, v, pos, batch)
    assert torch.allclose(out, brute_force(att, q, k, v, pos, batch), atol=1e-8, rtol=0)
    att.closed_form_rpe = False  # the same parameters through f_hat: a different output
    assert not torch.allclose(att(q, k, v, pos, batch), out, atol=1e-3)


@pytest.mark.parametrize("spectrum", ["isotropic_mixture", "radial_mixture", "gaussian_mixture"])
@pytest.mark.parametrize("causal", [False, True])
def test_closed_form_rpe_dense_and_pair_paths_agree(graphs64, spectrum, causal):
    q, k, v, pos, batch = graphs64
    att = closed_form_att(spectrum, causal=causal)
    att.dense_waste = 0.0  # pairs
    pairs = att(q, k, v, pos, batch)
    att.dense_waste = float("inf")  # dense
    dense = att(q, k, v, pos, batch)
    assert torch.allclose(dense, pairs, atol=1e-12, rtol=0)


@pytest.mark.parametrize("spectrum", ["isotropic_mixture", "radial_mixture"])
def test_closed_form_rpe_is_exactly_rotation_invariant(graphs64, spectrum):
    q, k, v, pos, batch = graphs64
    att = closed_form_att(spectrum)

    def fn(x, p, b):
        return att(x[:, :, :3], x[:, :, 3:6], x[:, :, 6:], p, b)

    x = torch.cat([q, k, v], dim=-1)
    for waste in (0.0, float("inf")):  # pair and dense layouts
        att.dense_waste = waste
        assert_rotation_invariant(fn, x, pos, batch)
        assert_translation_invariant(fn, x, pos, batch, shift=1e3)
    att.closed_form_rpe = False  # f_hat of one frequency draw is not isotropic: the check bites
    with pytest.raises(AssertionError, match="rotation"):
        assert_rotation_invariant(fn, x, pos, batch)


def test_closed_form_rpe_leaves_linear_mode_alone(graphs64):
    """Linear mode still estimates the RPE with the R frequencies, option or not."""
    q, k, v, pos, batch = graphs64
    att = closed_form_att("isotropic_mixture", attention="linear")
    plain = FLTAttention(2, 3, 3, spectrum="isotropic_mixture", attention="linear").double()
    plain.load_state_dict(att.state_dict())
    assert torch.equal(att(q, k, v, pos, batch), plain(q, k, v, pos, batch))


@pytest.mark.parametrize(
    "spectrum",
    [
        "isotropic_mixture",
        "radial_mixture",
    ],
)
def test_closed_form_rpe_gradcheck(spectrum):
    gen = torch.Generator().manual_seed(2)
    n = 5
    att = moved(
        FLTAttention(
            1,
            2,
            3,
            spectrum=spectrum,
            attention="exact",
            closed_form_rpe=True,
            num_features=8,
            num_frequencies=4,
            spectrum_options={"num_components": 3},
        )
    ).double()
    q, k, v = (
        torch.randn(n, 1, 2, generator=gen, dtype=torch.float64, requires_grad=True)
        for _ in range(3)
    )
    pos = torch.randn(n, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    batch = torch.tensor([0, 0, 1, 1, 1])
    assert torch.autograd.gradcheck(lambda *a: att(*a, batch), (q, k, v, pos))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mask": "mul"}, "closed_form_rpe needs mask='exp', got mask='mul'"),
        ({"spectrum": "mlp"}, "closed_form_rpe needs a spectrum with a closed form, got 'mlp'"),
    ],
)
def test_closed_form_rpe_bad_options(kwargs, match):
    kwargs = {"spectrum": "isotropic_mixture", **kwargs}
    with pytest.raises(ValueError, match=match):
        FLTAttention(2, 3, 3, closed_form_rpe=True, **kwargs)
    FLTAttention(2, 3, 3, **kwargs)  # fine without the option


# cutoff: exact short range on a neighbour list, low-rank long range


def cutoff_att(**kwargs):
    options = dict(spectrum="isotropic_mixture", cutoff=2.5, length_scale=0.3)
    return moved(FLTAttention(2, 3, 3, **{**options, **kwargs})).double()


@pytest.mark.parametrize("long_range", [None, "isotropic_mixture"])
def test_cutoff_exact_matches_brute_force(graphs64, long_range):
    q, k, v, pos, batch = graphs64
    att = cutoff_att(attention="exact", long_range=long_range)
    delta = pos.unsqueeze(1) - pos.unsqueeze(0)
    far = delta.norm(dim=-1) > 2.5
    f = att.rpe(delta)
    if long_range is None:
        assert f[far].abs().max() == 0 and f[~far].std() > 0.05
    assert torch.allclose(att(q, k, v, pos, batch), brute_force(att, q, k, v, pos, batch), atol=1e-8)


def test_cutoff_linear_is_exact_when_every_pair_is_near(graphs64):
    """Within the cutoff linear mode replaces the estimate by the exact weight: a cutoff wider
    than every graph makes linear and exact agree to rounding, whatever the features."""
    q, k, v, pos, batch = graphs64
    att = cutoff_att(cutoff=50.0, num_features=8)
    exact = set_mode(att, "exact")(q, k, v, pos, batch)
    linear = set_mode(att, "linear")(q, k, v, pos, batch)
    assert torch.allclose(linear, exact, atol=1e-10)


def set_mode(att, mode):
    att.attention = mode
    return att


@pytest.mark.parametrize("long_range", [None, "isotropic_mixture"])
def test_cutoff_linear_is_its_kernel_normalised(graphs64, long_range):
    """One graph: linear mode equals its own weights (exact near, estimated far) normalised."""
    q, k, v, pos, batch = graphs64
    att = cutoff_att(long_range=long_range)
    one = batch == 2  # the 7-token graph
    w = att.kernel(q[one], k[one], pos[one])
    ref = torch.einsum("ijh,jhe->ihe", w, v[one]) / w.sum(1).unsqueeze(-1)
    assert torch.allclose(att(q[one], k[one], v[one], pos[one]), ref, atol=1e-10)


@pytest.mark.parametrize("long_range", [None, "isotropic_mixture"])
def test_cutoff_linear_dense_and_neighbour_list_paths_agree(graphs64, monkeypatch, long_range):
    """Small graphs take [G, n, n] blocks, large ones the neighbour list: the same estimator."""

    q, k, v, pos, batch = graphs64
    att = cutoff_att(long_range=long_range)
    dense = att(q, k, v, pos, batch)
    monkeypatch.setattr(GraphSizes, "small", lambda self, **kwargs: False)
    assert torch.allclose(att(q, k, v, pos, batch), dense, atol=1e-12)


def test_cutoff_linear_chunked_path_matches_plain(graphs64, monkeypatch):
    import flt3d.nn.pairs as pairs

    monkeypatch.setattr(GraphSizes, "small", lambda self, **kwargs: False)
    q, k, v, pos, batch = graphs64
    att = cutoff_att(long_range="isotropic_mixture")
    q, k, v = (t.clone().requires_grad_(True) for t in (q, k, v))
    results = []
    for plain_chunks, chunk in ((16, 1 << 22), (0, 64)):
        monkeypatch.setattr(pairs, "_PLAIN_CHUNKS", plain_chunks)
        monkeypatch.setattr(pairs, "_CHUNK_ELEMENTS", chunk)
        out = att(q, k, v, pos, batch)
        grads = torch.autograd.grad(out.pow(2).sum(), (q, k, v, *att.spectrum.parameters()))
        results.append((out, grads))
    assert torch.allclose(results[0][0], results[1][0], atol=1e-12)
    for a, b in zip(results[0][1], results[1][1]):
        assert torch.allclose(a, b, atol=1e-10)


def test_cutoff_linear_error_decays_and_is_rotation_bounded():
    """Molecule-like cloud with a cutoff smaller than the cloud: the far pairs' estimate
    error falls like m^(-1/2) (slope <= -0.35), and rotating the input moves linear mode by
    no more than that error (the short range is exactly invariant)."""
    from flt3d.testing import random_rotation

    gen = torch.Generator().manual_seed(4)
    n = 40
    q = 0.5 * torch.randn(n, 2, 8, generator=gen, dtype=torch.float64)
    k = 0.5 * torch.randn(n, 2, 8, generator=gen, dtype=torch.float64)
    v = torch.randn(n, 2, 8, generator=gen, dtype=torch.float64)
    pos = 2.0 * torch.randn(n, 3, generator=gen, dtype=torch.float64)
    torch.manual_seed(0)
    ref = moved(FLTAttention(2, 8, 3, spectrum="isotropic_mixture", cutoff=3.0)).double()
    exact = set_mode(ref, "exact")(q, k, v, pos)
    errors = []
    for m in (64, 256, 1024, 4096):
        att = FLTAttention(2, 8, 3, spectrum="isotropic_mixture", cutoff=3.0, num_features=m)
        att = att.double()
        att.spectrum.load_state_dict(ref.spectrum.state_dict())
        sq = []
        for seed in range(6):
            att.redraw_features(generator=torch.Generator().manual_seed(seed))
            sq.append(((att(q, k, v, pos) - exact).norm() / exact.norm()).pow(2))
        errors.append(torch.stack(sq).mean().sqrt().item())
    slope = math.log(errors[-1] / errors[0]) / math.log(64)
    assert slope <= -0.35 and errors[-1] < 0.03, (slope, errors)
    rot = random_rotation(dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    turned = att(q, k, v, pos @ rot.T)
    assert (turned - att(q, k, v, pos)).norm() / exact.norm() < 1e-10  # content kernel only


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mask": "mul"}, "cutoff needs a spectrum, mask='exp'"),
        ({"causal": True}, "causal=False"),
        ({"spectrum": "mlp"}, "closed form"),
        ({"cutoff": -1.0}, "positive number"),
    ],
)
def test_cutoff_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FLTAttention(2, 3, 3, **{"spectrum": "isotropic_mixture", "cutoff": 2.0, **kwargs})


def test_long_range_needs_cutoff():
    with pytest.raises(ValueError, match="long_range needs a cutoff"):
        FLTAttention(2, 3, 3, long_range="isotropic_mixture")


# estimators in the regime of moved RPEs: draws from the density on a randomised quadrature


@pytest.mark.parametrize("spectrum", ["gaussian_mixture", "isotropic_mixture"])
def test_mul_mask_converges_with_slope_and_bar(spectrum):
    """mul mask, moved mixtures (spectral mass 1.3-1.9), float64, two graphs of 32 tokens:
    output error vs exact falls with log-log slope <= -0.35 from m = 64 to 4096 and is <= 3%
    at m = 4096 (calibrated: slope -0.49, 1.9% at 4096, 8 draws per m)."""
    gen = torch.Generator().manual_seed(1)
    n, h, d = 64, 2, 8
    batch = torch.arange(n) // 32
    q = 0.5 * torch.randn(n, h, d, generator=gen, dtype=torch.float64)
    k = 0.5 * torch.randn(n, h, d, generator=gen, dtype=torch.float64)
    v = torch.randn(n, h, d, generator=gen, dtype=torch.float64)
    pos = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    options = dict(spectrum=spectrum, mask="mul", sampler="density", nodes="quadrature")
    torch.manual_seed(0)
    ref = moved(FLTAttention(h, d, 3, attention="exact", **options)).double()
    assert ref.spectrum.mass().min() > 1.0  # a strong RPE, not a tamed one
    exact = ref(q, k, v, pos, batch)
    errors = []
    for m in (64, 256, 1024, 4096):
        att = same_spectrum(FLTAttention(h, d, 3, num_features=m, **options).double(), ref)
        sq = []
        for seed in range(8):
            att.redraw_features(generator=torch.Generator().manual_seed(seed))
            sq.append(((att(q, k, v, pos, batch) - exact).norm() / exact.norm()).pow(2))
        errors.append(torch.stack(sq).mean().sqrt().item())
    slope = math.log(errors[-1] / errors[0]) / math.log(64)
    assert slope <= -0.35 and errors[-1] <= 0.03, (slope, errors)


def test_causal_large_keys_never_give_zero_rows():
    """Keys of std 10 and 20: the running per-feature maximum keeps every row's normaliser
    at least one, so no row is silently zero where exact mode is not (float32 and float64)."""
    gen = torch.Generator().manual_seed(0)
    length = 300
    pos = torch.arange(length, dtype=torch.float64).unsqueeze(-1)
    for std in (10.0, 20.0):
        q = torch.randn(length, 2, 4, generator=gen, dtype=torch.float64)
        k = std * torch.randn(length, 2, 4, generator=gen, dtype=torch.float64)
        v = torch.randn(length, 2, 4, generator=gen, dtype=torch.float64)
        for dtype in (torch.float32, torch.float64):
            att = FLTAttention(2, 4, 1, spectrum=None, causal=True).to(dtype)
            args = [t.to(dtype) for t in (q, k, v, pos)]
            exact = set_mode(att, "exact")(*args)
            linear = set_mode(att, "linear")(*args)
            assert torch.isfinite(linear).all()
            zero_rows = (linear.abs().amax(-1) == 0) & (exact.abs().amax(-1) > 0)
            assert not bool(zero_rows.any()), (std, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_causal_keys_far_apart_keep_earlier_rows_to_the_bit(dtype):
    """A chunk's keys share one shift until a key lies far above it (here the second half's
    keys, 40 times larger); rows from there on take the running maximum. Which rows do reads
    no later key: the rows before are bit-identical to a run without the large keys, and the
    output matches the same features' weights summed pair by pair, with no zero row."""
    import flt3d.nn.causal_attention as functional

    gen = torch.Generator().manual_seed(3)
    n, h, m, e = 150, 2, 8, 3
    batch = torch.zeros(n, dtype=torch.long)
    eq = torch.randn(n, h, m, generator=gen, dtype=torch.float64).to(dtype)
    ek = torch.randn(n, h, m, generator=gen, dtype=torch.float64).to(dtype)
    v = torch.randn(n, h, e, generator=gen, dtype=torch.float64).to(dtype)
    far = ek.clone()
    far[70:] *= 40.0  # exponents spread by hundreds: beyond the shared shift's margin
    assert float(far.amax() - far.amin()) > functional._shift_margin(dtype)
    near = functional.causal_linear_attention(eq, ek, v, batch, 1)
    wide = functional.causal_linear_attention(eq, far, v, batch, 1)
    assert torch.equal(near[:70], wide[:70])
    assert bool(torch.isfinite(wide).all()) and bool((wide.abs().amax(-1) > 0).all())
    # the same estimate summed pair by pair in float64, each row shifted by its largest term
    eq64, far64, v64 = eq.double(), far.double(), v.double()
    logits = eq64.unsqueeze(1) + far64.unsqueeze(0)  # [i, j, H, m]
    allowed = torch.ones(n, n, dtype=torch.bool).tril()[..., None, None]
    logits = logits.masked_fill(~allowed, -torch.inf)
    top = logits.amax(dim=(1, 3), keepdim=True)
    w = torch.exp(logits - top).sum(-1)  # [i, j, H]
    ref = torch.einsum("ijh,jhe->ihe", w, v64) / w.sum(1).unsqueeze(-1)
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(wide.double(), ref, rtol=tol, atol=tol)


def test_redraw_train_draws_fresh_features_in_training_only(graphs64):
    q, k, v, pos, batch = graphs64
    att = moved(FLTAttention(2, 3, 3, redraw="train", num_features=16)).double()
    first, second = att(q, k, v, pos, batch), att(q, k, v, pos, batch)
    assert not torch.allclose(first, second, atol=1e-6)
    att.eval()
    assert torch.equal(att(q, k, v, pos, batch), att(q, k, v, pos, batch))
    assert "redraw='train'" in repr(att)
    with pytest.raises(ValueError, match="redraw must be one of"):
        FLTAttention(2, 3, 3, redraw="sometimes")


def test_redraw_train_draws_nothing_a_forward_pass_does_not_use(graphs64):
    """Local attention uses neither features nor frequencies, exact mode no features, and an
    exact closed-form filter no frequencies: their training-mode passes leave the global RNG
    where it was."""
    from flt3d.nn import SpectralFilter

    q, k, v, pos, batch = graphs64
    local = FLTAttention(2, 3, 3, redraw="train", cutoff=2.5, far=None).double().train()
    exact = FLTAttention(
        2, 3, 3, redraw="train", attention="exact", closed_form_rpe=True
    ).double().train()
    kernel = SpectralFilter(
        2, 3, 3, redraw="train", attention="exact", closed_form=True
    ).double().train()
    for run in (
        lambda: local(q, k, v, pos, batch),
        lambda: exact(q, k, v, pos, batch),
        lambda: kernel(v, pos, batch),
    ):
        state = torch.get_rng_state()
        run()
        assert torch.equal(torch.get_rng_state(), state)
    kernel.attention = "linear"  # the low-rank estimate draws fresh frequencies
    state = torch.get_rng_state()
    kernel(v, pos, batch)
    assert not torch.equal(torch.get_rng_state(), state)


def test_far_temperature_is_one_function_in_both_modes(graphs64, monkeypatch):
    """Content logits scaled by tau + (1 - tau) u(r): exact mode matches the formula pair by
    pair, linear mode equals exact when every pair is near, and its dense and neighbour-list
    paths agree."""
    from flt3d.nn import cosine_cutoff

    q, k, v, pos, batch = graphs64
    att = cutoff_att(far_temperature=0.3, attention="exact")
    one = batch == 2
    qq, kk, vv, pp = q[one], k[one], v[one], pos[one]
    delta = pp.unsqueeze(1) - pp.unsqueeze(0)
    s = 0.3 + 0.7 * cosine_cutoff(delta.norm(dim=-1), 2.5).unsqueeze(-1)
    w = torch.exp(s * torch.einsum("ihd,jhd->ijh", qq, kk) / math.sqrt(3) + att.rpe(delta))
    ref = torch.einsum("ijh,jhe->ihe", w, vv) / w.sum(1).unsqueeze(-1)
    assert torch.allclose(att(qq, kk, vv, pp), ref, atol=1e-10)
    wide = cutoff_att(far_temperature=0.3, cutoff=50.0)
    assert torch.allclose(
        set_mode(wide, "linear")(q, k, v, pos, batch),
        set_mode(wide, "exact")(q, k, v, pos, batch),
        atol=1e-10,
    )
    att.attention = "linear"
    dense = att(q, k, v, pos, batch)
    kernel = att.kernel(qq, kk, pp)
    assert torch.allclose(
        att(qq, kk, vv, pp),
        torch.einsum("ijh,jhe->ihe", kernel, vv) / kernel.sum(1).unsqueeze(-1),
        atol=1e-10,
    )
    monkeypatch.setattr(GraphSizes, "small", lambda self, **kwargs: False)
    assert torch.allclose(att(q, k, v, pos, batch), dense, atol=1e-12)
    with pytest.raises(ValueError, match="far_temperature needs a cutoff"):
        FLTAttention(2, 3, 3, far_temperature=0.5)
    with pytest.raises(ValueError, match="far=None"):
        FLTAttention(2, 3, 3, far=None)
    with pytest.raises(ValueError, match="far=None"):
        FLTAttention(2, 3, 3, spectrum="isotropic_mixture", cutoff=3.0, far=None, far_temperature=0.5)
    with pytest.raises(ValueError, match="far must be"):
        FLTAttention(2, 3, 3, spectrum="isotropic_mixture", cutoff=3.0, far="none")


def test_causal_ordinary_keys_take_the_shared_shift(monkeypatch):
    """Keys of ordinary size never build the [c, c, H, m] block of the running maximum: that
    path is for keys far apart within a chunk, and it grew a 10^5-token sequence past 24 GB."""
    import flt3d.nn.causal_attention as functional

    calls = []
    slow = functional._run_exact_shift

    def counted(*args):
        calls.append(1)
        return slow(*args)

    monkeypatch.setattr(functional, "_run_exact_shift", counted)
    gen = torch.Generator().manual_seed(0)
    att = FLTAttention(2, 4, 1, spectrum="local", causal=True)
    q, k, v = (torch.randn(600, 2, 4, generator=gen) for _ in range(3))
    pos = torch.arange(600, dtype=torch.float32).unsqueeze(-1)
    q.requires_grad_()
    att(q, k, v, pos).square().sum().backward()  # forward, and its recomputation in backward
    assert not calls
    # exponents (not inputs) 40 times apart within a chunk do take it
    eq, ek = (torch.randn(300, 2, 8, generator=gen) for _ in range(2))
    ek[150:] *= 40.0
    functional.causal_linear_attention(eq, ek, v[:300], torch.zeros(300, dtype=torch.long), 1)
    assert calls
