"""Input checks that read tensor values (a host synchronisation each) run once per forward.

A model checks finite coordinates and graph ids once and passes ``validate=False`` to its
blocks; a convolution checks once for all its branches. Counted through the two functions the
checks call (``torch.isfinite`` and ``torch.aminmax``).
"""

from __future__ import annotations

import pytest
import torch

from flt3d.models import FLTNet, PointCloudClassifier
from flt3d.nn import FLTConv


@pytest.fixture
def calls(monkeypatch):
    counts = {"isfinite": 0, "aminmax": 0}
    for name in counts:
        original = getattr(torch, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            counts[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(torch, name, counted)
    return counts


def _molecules():
    gen = torch.Generator().manual_seed(0)
    z = torch.tensor([1, 6, 7, 8])[torch.randint(0, 4, (30,), generator=gen)]
    return z, 1.5 * torch.randn(30, 3, generator=gen), torch.arange(3).repeat_interleave(10)


@pytest.mark.parametrize("attention", ["exact", "linear"])
@pytest.mark.parametrize("num_layers", [1, 3])
def test_fltnet_checks_once_whatever_the_depth(calls, attention, num_layers):
    z, pos, batch = _molecules()
    model = FLTNet(hidden_channels=16, num_layers=num_layers, heads=2, attention=attention)
    calls.update(isfinite=0, aminmax=0)  # the constructor checks its statistics
    with torch.no_grad():
        model(z, pos, batch)
    assert calls == {"isfinite": 1, "aminmax": 1}


def test_conv_checks_once_for_its_branches(calls):
    _, pos, batch = _molecules()
    conv = FLTConv(8, 8, heads=2, attention="linear", spectral_filter=True)
    calls.update(isfinite=0, aminmax=0)
    conv(torch.randn(30, 8), pos, batch)
    assert calls == {"isfinite": 1, "aminmax": 1}
    calls.update(isfinite=0, aminmax=0)
    conv(torch.randn(30, 8), pos, batch, num_graphs=3, validate=False)
    assert calls == {"isfinite": 0, "aminmax": 0}


def test_point_cloud_classifier_checks_once(calls):
    model = PointCloudClassifier(3, hidden_channels=8, num_layers=3, heads=2)
    calls.update(isfinite=0, aminmax=0)
    model(torch.randn(20, 3), torch.randn(20, 3), torch.arange(2).repeat_interleave(10))
    assert calls == {"isfinite": 1, "aminmax": 1}


@pytest.mark.parametrize("attention", ["exact", "linear"])
def test_bad_inputs_are_still_caught_at_the_top(attention):
    z, pos, batch = _molecules()
    model = FLTNet(hidden_channels=16, num_layers=2, heads=2, attention=attention)
    bad = pos.clone()
    bad[4, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        model(z, bad, batch)
    with pytest.raises(ValueError, match="non-negative graph ids"):
        model(z, pos, batch - 1)
    conv = FLTConv(8, 8, heads=2, attention=attention)
    with pytest.raises(ValueError, match="NaN or infinite"):
        conv(torch.randn(30, 8), bad, batch)
