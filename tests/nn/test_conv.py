import pytest
import torch

from flt3d.nn import FLTBlock, FLTConv, set_attention
from flt3d.testing import assert_batch_independent, assert_permutation_equivariant


def test_shapes_repr_reset():
    conv = FLTConv(16, 32, heads=4)
    assert repr(conv) == "FLTConv(16, 32, heads=4)"
    out = conv(torch.randn(10, 16), torch.randn(10, 3), torch.tensor([0] * 4 + [1] * 6))
    assert out.shape == (10, 32)
    before = conv.qkv.weight.clone()
    conv.reset_parameters()
    assert not torch.equal(before, conv.qkv.weight)


@pytest.mark.parametrize("attention", ["linear", "exact"])
def test_block_batched_equals_one_by_one(attention):
    block = FLTBlock(16, heads=4, attention=attention).double()
    x = torch.randn(12, 16, dtype=torch.float64)
    pos = torch.randn(12, 3, dtype=torch.float64)
    batch = torch.tensor([0] * 5 + [1] * 1 + [2] * 6)
    assert_batch_independent(block, x, pos, batch)
    assert_permutation_equivariant(block, x, pos, batch)


def test_set_attention_switches_every_layer():
    model = torch.nn.ModuleList([FLTBlock(8, heads=2), FLTBlock(8, heads=2)])
    set_attention(model, "exact")
    assert all(b.conv.attention == "exact" for b in model)


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
