import pytest
import torch

from flt3d.nn import FLTBlock, FLTConv, set_attention


def test_shapes_repr_reset():
    conv = FLTConv(16, 32, heads=4)
    assert repr(conv) == "FLTConv(16, 32, heads=4)"
    out = conv(torch.randn(10, 16), torch.randn(10, 3), torch.tensor([0] * 4 + [1] * 6))
    assert out.shape == (10, 32)
    before = conv.qkv.weight.clone()
    conv.reset_parameters()
    assert not torch.equal(before, conv.qkv.weight)


def test_gradients_flow_to_spectrum():
    conv = FLTConv(8, 8, heads=2)
    conv(torch.randn(6, 8), torch.randn(6, 3)).pow(2).sum().backward()
    assert conv.attn.spectrum.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: FLTConv(8, 10, heads=4), "divisible"),
        (
            lambda: FLTConv(8, 8, heads=2)(torch.randn(5, 7), torch.randn(5, 3)),
            r"x must be \[N, 8\]",
        ),
        (
            lambda: FLTConv(8, 8, heads=2, pos_dim=2)(torch.randn(5, 8), torch.randn(5, 3)),
            "pos_dim=2",
        ),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("attention", ["linear", "exact"])
def test_long_range_filter_sees_past_the_cutoff(attention):
    """With cutoff 3, an atom 20 Å away reaches the others through the long-range filter
    branch and not through the local filter; the branch is one function in both modes (for
    one draw of its frequencies)."""
    torch.manual_seed(0)
    conv = FLTConv(8, 8, heads=2, attention=attention, spectrum="isotropic_mixture",
                   cutoff=3.0, spectral_filter=True, long_range_filter="isotropic_mixture",
                   long_range_length_scale=5.0).double().eval()  # fmt: skip
    assert conv.long_filter is not None and conv.long_filter.cutoff is None
    assert "long_range_filter=True" in repr(conv)
    gen = torch.Generator().manual_seed(1)
    pos = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    pos[-1] = torch.tensor([20.0, 0.0, 0.0], dtype=torch.float64)
    for branch, reaches in ((conv.long_filter, True), (conv.filter, False)):
        u = torch.randn(6, branch.heads, branch.head_channels, generator=gen, dtype=torch.float64)
        u.requires_grad_(True)
        (grad,) = torch.autograd.grad(branch(u, pos)[:-1].sum(), u)
        assert (grad[-1].abs().max() > 1e-6) == reaches
    lf = conv.long_filter
    u = torch.randn(6, lf.heads, lf.head_channels, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        lf.attention = "linear"
        linear = lf(u, pos)
        lf.attention = "exact"
        exact = lf(u, pos)
    assert torch.allclose(linear, exact, atol=1e-10)
    set_attention(conv, "linear")
    assert conv.long_filter.attention == "linear"


def test_repr_names_the_mode_cutoff_and_filters():
    conv = FLTConv(8, 8, heads=2, attention="exact", cutoff=3.0, spectral_filter=True,
                   filter_spectrum="gaussian", filter_heads=1,
                   long_range_filter="isotropic_mixture")  # fmt: skip
    text = repr(conv)
    assert text == conv.extra_repr().join(("FLTConv(", ")"))
    for part in ("attention='exact'", "cutoff=3.0", "spectral_filter=True",
                 "filter_spectrum='gaussian'", "filter_heads=1", "long_range_filter=True",
                 "long_range_spectrum='isotropic_mixture'"):  # fmt: skip
        assert part in text, text
    block = FLTBlock(8, heads=2, attention="exact", spectral_filter=True)
    assert repr(block) == (
        "FLTBlock(8, heads=2, attention='exact', spectral_filter=True, "
        "filter_spectrum='isotropic_mixture', filter_heads=2)"
    )
    assert repr(FLTBlock(8, heads=2)) == "FLTBlock(8, heads=2)"
