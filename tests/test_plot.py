import math

import numpy as np
import pytest
import torch

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from flt3d import plot  # noqa: E402
from flt3d.nn import (  # noqa: E402
    FLTAttention,
    FLTBlock,
    FLTConv,
    GaussianMixture,
    IsotropicMixture,
    LocalRPE,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def head_lines(axis):
    return [line for line in axis.lines if line.get_label().lstrip("_").startswith("head")]


def test_find_attention_picks_layer():
    model = torch.nn.ModuleList([FLTBlock(8, heads=2), FLTBlock(8, heads=2)])
    assert plot.find_attention(model) is model[0].conv.attn
    assert plot.find_attention(model, layer=1) is model[1].conv.attn
    with pytest.raises(ValueError, match="layer"):
        plot.find_attention(model, layer=2)
    with pytest.raises(ValueError, match="no FLTAttention"):
        plot.find_attention(torch.nn.Linear(2, 2))
    spec = IsotropicMixture(2, 3)
    assert plot.find_attention(spec) is spec


def test_rpe_profile_isotropic_radial_matches_module():
    torch.manual_seed(1)
    conv = FLTConv(9, 9, heads=3, pos_dim=3, spectrum="isotropic_mixture")
    with torch.no_grad():
        conv.attn.spectrum.weight.mul_(torch.tensor([[1.0], [0.5], [2.0]]))
    fig = plot.rpe_profile(conv, max_distance=5.0)
    assert len(fig.axes) == 1
    axis = fig.axes[0]
    lines = head_lines(axis)
    assert len(lines) == 6  # f-hat and limit per head
    assert [line.get_label() for line in lines[::2]] == ["head 0", "head 1", "head 2"]
    assert all(line.get_linestyle() == "--" for line in lines[1::2])
    assert axis.get_xlabel() == r"$|\Delta|$"
    x = lines[0].get_xdata()
    assert x[0] == 0.0 and x[-1] == pytest.approx(5.0)
    spec = conv.attn.spectrum
    idx = [0, 40, 100, 200]
    t = torch.tensor(x[idx], dtype=torch.float32)
    eye = torch.eye(3)
    with torch.no_grad():
        # f-hat averaged over the coordinate axes, the limit along any direction
        expected_hat = torch.stack([conv.attn.rpe(t[:, None] * e) for e in eye]).mean(0)
        expected_lim = spec.limit(t[:, None] * eye[1])
    for h in range(3):
        np.testing.assert_allclose(
            lines[2 * h].get_ydata()[idx], expected_hat[:, h], rtol=1e-5, atol=1e-6
        )
        np.testing.assert_allclose(
            lines[2 * h + 1].get_ydata()[idx], expected_lim[:, h], rtol=1e-5, atol=1e-6
        )
    # limit at 0 is the total weight of the mixture
    assert lines[5].get_ydata()[0] == pytest.approx(float(spec.weight[2].detach().sum()), rel=1e-5)


def test_rpe_profile_1d_signed_and_heads_subset():
    att = FLTAttention(4, 4, 1, spectrum="local", spectrum_options={"radius": 3.0})
    fig = plot.rpe_profile(att, heads=[1, 3], max_distance=8.0)
    lines = head_lines(fig.axes[0])
    assert len(lines) == 4
    assert [line.get_label() for line in lines] == ["head 1", "_head 1", "head 3", "_head 3"]
    x = lines[0].get_xdata()
    assert x[0] == pytest.approx(-8.0) and x[-1] == pytest.approx(8.0)
    delta = torch.tensor(x[[0, 80, 100, 150]], dtype=torch.float32).unsqueeze(-1)
    with torch.no_grad():
        np.testing.assert_allclose(
            lines[2].get_ydata()[[0, 80, 100, 150]], att.rpe(delta)[:, 3], rtol=1e-5, atol=1e-6
        )
        np.testing.assert_allclose(
            lines[3].get_ydata()[[0, 80, 100, 150]],
            att.spectrum.limit(delta)[:, 3],
            rtol=1e-5,
            atol=1e-6,
        )
    # the smoothed box: height 1 inside, about 0 well outside the radius
    assert lines[3].get_ydata()[100] == pytest.approx(1.0, abs=5e-3)  # erf(3 / sqrt 2)
    assert abs(lines[3].get_ydata()[0]) < 1e-3


def test_rpe_profile_anisotropic_slices_per_axis_without_limit():
    spec = GaussianMixture(2, 2, num_frequencies=8)
    fig = plot.rpe_profile(spec, limit=False, max_distance=4.0)
    assert len(fig.axes) == 2
    for d, axis in enumerate(fig.axes):
        lines = head_lines(axis)
        assert len(lines) == 2
        assert axis.get_xlabel().startswith(rf"$\Delta_{d + 1}$")
        x = torch.tensor(lines[0].get_xdata(), dtype=torch.float32)
        delta = torch.zeros(len(x), 2)
        delta[:, d] = x
        with torch.no_grad():
            np.testing.assert_allclose(
                lines[1].get_ydata(), spec(delta)[:, 1], rtol=1e-5, atol=1e-6
            )


def test_rpe_profile_mul_mask_adds_shift_to_limit():
    att = FLTAttention(2, 4, 3, spectrum="isotropic_mixture", mask="mul")
    fig = plot.rpe_profile(att, max_distance=2.0)
    lines = head_lines(fig.axes[0])
    c = att.mul_shift().detach()
    with torch.no_grad():
        f0 = att.spectrum.limit(torch.zeros(1, 3))[0]
    assert lines[1].get_ydata()[0] == pytest.approx(float(f0[0] + c[0]), rel=1e-5)


def test_rpe_profile_into_given_axes_and_errors():
    fig, ax = plt.subplots()
    assert plot.rpe_profile(IsotropicMixture(2, 3), ax=ax) is fig
    with pytest.raises(ValueError, match="2 axes"):
        plot.rpe_profile(GaussianMixture(2, 2), ax=ax)
    with pytest.raises(ValueError, match="heads"):
        plot.rpe_profile(IsotropicMixture(2, 3), heads=[2])
    with pytest.raises(ValueError, match="no spectral RPE"):
        plot.rpe_profile(FLTAttention(2, 4, 3, spectrum=None))


def test_spectrum_scatter_and_curve_match_density():
    torch.manual_seed(2)
    spec = IsotropicMixture(2, 3, num_frequencies=12)
    fig = plot.spectrum(spec)
    axis = fig.axes[0]
    assert len(axis.collections) == 2 and len(axis.lines) == 2
    assert [c.get_label() for c in axis.collections] == ["head 0", "head 1"]
    assert axis.get_xlabel() == r"$|\xi|$" and axis.get_ylabel() == r"$g(\xi)$"
    with torch.no_grad():
        a, _ = spec.weights(spec.frequencies)
        g = a * spec.log_proposal(spec.frequencies).exp()
    offsets = axis.collections[1].get_offsets()
    np.testing.assert_allclose(offsets[:, 0], spec.frequencies[1].norm(dim=-1), rtol=1e-5)
    np.testing.assert_allclose(offsets[:, 1], g[1], rtol=1e-5)
    # the isotropic mixture density at xi = 0 is sum_b w_b N(0; 0, sigma_b^2 I)
    with torch.no_grad():
        sigma = spec.width[0, :, 0].double()
        g0 = (spec.weight[0].double() * (2 * math.pi * sigma**2) ** -1.5).sum()
    assert axis.lines[0].get_xdata()[0] == 0.0
    assert axis.lines[0].get_ydata()[0] == pytest.approx(float(g0), rel=1e-4)
    assert axis.get_yscale() == "log"


def test_spectrum_anisotropic_has_no_curve_and_1d_is_signed():
    fig = plot.spectrum(GaussianMixture(3, 2))
    assert len(fig.axes[0].collections) == 3 and len(fig.axes[0].lines) == 0
    att = FLTAttention(2, 4, 1, spectrum="local")
    fig = plot.spectrum(FLTConv(8, 8, heads=2, pos_dim=1, spectrum="local"))
    assert fig.axes[0].get_xlabel() == r"$\xi$"
    x = fig.axes[0].lines[0].get_xdata()
    assert x[0] < 0 < x[-1]
    assert plot.spectrum(att, heads=[0]).axes[0].collections[0].get_label() == "head 0"


def test_feature_convergence_decreases_and_leaves_module_alone():
    att = FLTAttention(2, 8, 3, spectrum="isotropic_mixture", num_features=16)
    projection = att.projection.clone()
    fig = plot.feature_convergence(att, features=(4, 64, 1024), repeats=4)
    axis = fig.axes[0]
    assert axis.get_xscale() == "log" and axis.get_yscale() == "log"
    assert axis.get_xlabel() == "random features $m$"
    data, reference = axis.lines[0], [line for line in axis.lines if line.get_linestyle() == ":"][0]
    np.testing.assert_array_equal(data.get_xdata(), [4, 64, 1024])
    y = np.asarray(data.get_ydata())
    assert y[2] < y[0] / 2  # the estimate converges to exact attention
    np.testing.assert_allclose(reference.get_ydata(), y[0] * np.array([1.0, 0.25, 0.0625]))
    assert att.num_features == 16 and att.attention == "linear"
    assert torch.equal(att.projection, projection)
    labels = [t.get_text() for t in axis.get_legend().get_texts()]
    assert labels == [r"$\propto m^{-1/2}$", "linear vs exact"]


def test_feature_convergence_given_inputs_in_model():
    model = torch.nn.Sequential(FLTBlock(8, heads=2, pos_dim=2))
    q = k = v = 0.3 * torch.randn(10, 2, 4)
    pos, batch = torch.randn(10, 2), torch.tensor([0] * 4 + [1] * 6)
    fig = plot.feature_convergence(model, features=(8, 16), repeats=2, inputs=(q, k, v, pos, batch))
    assert len(fig.axes[0].lines[0].get_xdata()) == 2
    with pytest.raises(ValueError, match="FLTAttention"):
        plot.feature_convergence(IsotropicMixture(2, 3))


def test_learning_curve_from_lightning_csv(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(
        "epoch,step,lr-AdamW,train_loss,val_loss,val_mae\n"
        "0,9,0.001,2.0,,\n"
        "0,9,,,1.5,0.9\n"
        "1,19,0.001,1.0,,\n"
        "1,19,,,1.2,0.7\n"
    )
    fig = plot.learning_curve(path)
    axis = fig.axes[0]
    assert [line.get_label() for line in axis.lines] == ["train_loss", "val_loss", "val_mae"]
    np.testing.assert_array_equal(axis.lines[1].get_xdata(), [9, 19])
    np.testing.assert_array_equal(axis.lines[1].get_ydata(), [1.5, 1.2])
    assert axis.get_xlabel() == "step" and axis.get_yscale() == "linear"  # spans < 10x
    fig = plot.learning_curve(path, keys=["val_mae"], x="epoch", logy=True)
    assert len(fig.axes[0].lines) == 1 and fig.axes[0].get_yscale() == "log"
    fig = plot.learning_curve({"step": [1, 2, 3], "loss": [100.0, 10.0, 1.0]})
    assert fig.axes[0].get_yscale() == "log" and fig.axes[0].get_xlabel() == "step"
    with pytest.raises(ValueError, match="nope"):
        plot.learning_curve(path, keys=["nope"])


def test_learning_curve_from_dataframe():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"step": [0, 1, 2], "train_loss": [1.0, -0.5, float("nan")]})
    fig = plot.learning_curve(frame)
    (line,) = fig.axes[0].lines
    np.testing.assert_array_equal(line.get_ydata(), [1.0, -0.5])
    assert fig.axes[0].get_yscale() == "linear"


def test_predicted_vs_true():
    true = torch.tensor([1.0, 2.0, 3.0, 4.0])
    pred = torch.tensor([1.5, 2.0, 2.0, 4.0])
    fig = plot.predicted_vs_true(pred, true, unit="eV", name="gap")
    axis = fig.axes[0]
    assert len(axis.collections) == 1 and len(axis.lines) == 1
    np.testing.assert_allclose(axis.collections[0].get_offsets(), np.stack([true, pred], 1))
    assert axis.get_xlabel() == "true gap [eV]" and axis.get_ylabel() == "predicted gap [eV]"
    assert axis.get_title().startswith("MAE = 0.375 eV")
    with pytest.raises(ValueError, match="same"):
        plot.predicted_vs_true([1.0, 2.0], [1.0])


def test_missing_matplotlib_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("no matplotlib")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r"pip install 'flt3d\[plot\]'"):
        plot.predicted_vs_true([1.0], [1.0])


def test_local_rpe_radius_visible_in_profile():
    spec = LocalRPE(1, 1, radius=2.0, length_scale=0.25)
    fig = plot.rpe_profile(spec, max_distance=4.0)
    x = fig.axes[0].lines[1].get_xdata()
    y = fig.axes[0].lines[1].get_ydata()
    # the limit drops through one half at the radius
    crossing = x[(x > 0) & (y < 0.5)][0]
    assert crossing == pytest.approx(2.0, abs=0.05)
