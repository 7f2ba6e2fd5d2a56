import pytest
import torch

from flt3d.nn import FLTAttention, FLTBlock, FLTConv, SpectralFilter, set_attention, set_redraw
from flt3d.nn.switches import LayerModes


def test_set_attention_switches_every_layer():
    model = torch.nn.ModuleList([FLTBlock(8, heads=2), FLTBlock(8, heads=2)])
    set_attention(model, "exact")
    assert all(b.conv.attention == "exact" for b in model)


def test_set_redraw_sets_every_flt_layer_and_checks_the_policy():
    model = torch.nn.ModuleList([FLTBlock(8, heads=2, spectral_filter=True), FLTBlock(8, heads=2)])
    assert set_redraw(model, "train") is model
    layers = [m for m in model.modules() if isinstance(m, (FLTAttention, SpectralFilter))]
    assert len(layers) == 3 and all(m.redraw == "train" for m in layers)
    with pytest.raises(ValueError, match="redraw must be one of"):
        set_redraw(model, "always")
    assert all(m.redraw == "train" for m in layers)


@pytest.mark.parametrize("layer", [lambda: FLTAttention(2, 4, 3), lambda: SpectralFilter(2, 4, 3)])
def test_flt_layers_share_the_mode_switches(layer):
    layer = layer()
    assert isinstance(layer, LayerModes)
    assert (layer.attention, layer.redraw) == ("linear", "never")
    layer.attention = "exact"
    assert layer.attention == "exact"
    with pytest.raises(ValueError, match="attention must be one of"):
        layer.attention = "dense"
    assert layer.attention == "exact"


def test_conv_module_keeps_its_import_path():
    import flt3d.nn as nn
    from flt3d.nn import conv

    assert set(conv.__all__) == {"FLTConv", "FLTBlock", "set_attention", "set_redraw"}
    assert all(getattr(conv, name) is getattr(nn, name) for name in conv.__all__)
    assert conv.FLTConv is FLTConv


def test_switches_check_their_value_also_without_flt_layers():
    plain = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="redraw must be one of"):
        set_redraw(plain, "always")
    with pytest.raises(ValueError, match="attention must be one of"):
        set_attention(plain, "fast")
    assert set_redraw(plain, "train") is plain and set_attention(plain, "exact") is plain
