"""Coordinates and phases stay in full precision under ``torch.autocast``.

In bfloat16 the coordinates of a molecule 10⁴ Å from the origin are rounded to multiples of
64 Å, and those of a 10⁴-token sequence to multiples of 32–64 positions: every RPE is then
wrong. The layers run their geometry outside autocast (:func:`flt3d.nn.precision.full_precision`),
so under bf16 autocast they give the float32 result on the same (bf16-rounded) inputs.
"""

from __future__ import annotations

import math

import pytest
import torch

from flt3d.models import FLTNet, SequenceModel
from flt3d.nn import FLTAttention, LatentCharges, SpectralFilter


def _bf16(*tensors):
    return [t.bfloat16() for t in tensors]


def _autocast():
    return torch.autocast("cpu", dtype=torch.bfloat16)


def _relative(a, b):
    return float((a.float() - b.float()).norm() / b.float().norm())


@pytest.mark.parametrize("attention", ["exact", "linear"])
@pytest.mark.parametrize("cutoff", [None, 4.0])
def test_attention_under_autocast_equals_float32_on_far_coordinates(attention, cutoff):
    gen = torch.Generator().manual_seed(0)
    n, heads, d = 60, 2, 4
    attn = FLTAttention(heads, d, 3, attention=attention, cutoff=cutoff, length_scale=0.5)
    attn.eval()
    q, k, v = _bf16(*torch.randn(3, n, heads, d, generator=gen).unbind(0))
    pos = 1e4 + 2.0 * torch.randn(n, 3, generator=gen)
    batch = torch.arange(2).repeat_interleave(n // 2)
    with torch.no_grad():
        ref = attn(q.float(), k.float(), v.float(), pos, batch)
        with _autocast():
            out = attn(q, k, v, pos, batch)
    assert out.dtype == torch.float32
    assert _relative(out, ref) < 1e-5


@pytest.mark.parametrize("attention", ["exact", "linear"])
def test_sequence_positions_up_to_ten_thousand_under_autocast(attention):
    # one 1D attention over positions 9,000-10,000: bf16 rounds them to multiples of 64
    gen = torch.Generator().manual_seed(1)
    attn = FLTAttention(2, 4, 1, spectrum="gaussian_mixture", attention=attention)
    q, k, v = _bf16(*torch.randn(3, 1000, 2, 4, generator=gen).unbind(0))
    pos = torch.arange(9000, 10000, dtype=torch.float32).unsqueeze(1)
    with torch.no_grad():
        ref = attn(q.float(), k.float(), v.float(), pos)
        with _autocast():
            out = attn(q, k, v, pos)
    assert _relative(out, ref) < 1e-5


@pytest.mark.parametrize("attention", ["exact", "linear"])
def test_filter_and_charges_under_autocast(attention):
    gen = torch.Generator().manual_seed(2)
    pos = 1e4 + 2.0 * torch.randn(40, 3, generator=gen)
    batch = torch.arange(4).repeat_interleave(10)
    filt = SpectralFilter(2, 4, 3, attention=attention, length_scale=0.5).eval()
    (v,) = _bf16(torch.randn(40, 2, 4, generator=gen))
    charges = LatentCharges(8, attention=attention).eval()
    with torch.no_grad():
        torch.nn.init.normal_(charges.charges.weight, generator=gen)
        (h,) = _bf16(torch.randn(40, 8, generator=gen))
        ref = filt(v.float(), pos, batch), charges(h.float(), pos, batch)
        with _autocast():
            out = filt(v, pos, batch), charges(h, pos, batch)
    for a, b in zip(out, ref):
        assert a.dtype == torch.float32
        assert _relative(a, b) < 1e-5


@pytest.mark.parametrize("attention", ["exact", "linear"])
def test_fltnet_far_from_the_origin_under_autocast(attention):
    # the projections and MLPs run in bf16 (about 0.2 % here); the geometry must not add to it
    # (rounded coordinates moved the representation by 50-60 %)
    gen = torch.Generator().manual_seed(3)
    z = torch.tensor([1, 6, 7, 8, 9])[torch.randint(0, 5, (40,), generator=gen)]
    batch = torch.arange(4).repeat_interleave(10)
    pos = 1e4 + 1.5 * torch.randn(40, 3, generator=gen)
    model = FLTNet(hidden_channels=32, num_layers=2, heads=4, attention=attention).eval()
    with torch.no_grad():
        ref = model.representation(z, pos, batch)
        with _autocast():
            out = model.representation(z, pos, batch)
    assert _relative(out, ref) < 0.01


def test_sequence_model_under_autocast():
    torch.manual_seed(4)
    model = SequenceModel(
        50, hidden_channels=32, num_layers=2, heads=4, attention="linear",
        spectrum="gaussian_mixture", max_length=1024,
    ).eval()  # fmt: skip
    tokens = torch.randint(0, 50, (1, 1024))
    with torch.no_grad():
        ref = model(tokens)
        with _autocast():
            out = model(tokens)
    assert _relative(out, ref) < 0.01  # 0.021 with positions in bf16


def test_outside_autocast_a_bfloat16_layer_stays_bfloat16():
    attn = FLTAttention(1, 4, 1, attention="exact").to(torch.bfloat16)
    q = torch.randn(5, 1, 4, dtype=torch.bfloat16)
    pos = torch.arange(5, dtype=torch.bfloat16).unsqueeze(1)
    assert attn(q, q, q, pos).dtype == torch.bfloat16


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_floored_exp_is_exp_down_to_the_smallest_normal_number(dtype):
    from flt3d.nn.precision import floored_exp

    tiny = torch.finfo(dtype).tiny
    x = torch.linspace(-2000.0, 5.0, 20001, dtype=dtype, requires_grad=True)
    y = floored_exp(x)
    exact = torch.exp(x.detach())
    normal = x.detach() >= math.log(tiny) + 1e-3
    assert normal.any() and (~normal).any()
    assert torch.equal(y.detach()[normal], exact[normal])  # bit for bit where exp is normal
    floor = y.detach()[~normal]  # just above tiny: normal, and negligible
    assert float(floor.min()) >= tiny and float(floor.max()) <= tiny * 1.002
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert torch.equal(grad[normal], exact[normal])  # d/dx exp = exp
    assert float(grad[~normal].abs().max()) == 0.0  # below the floor: flat, not subnormal

