"""Input checks and layout choices that read tensor values (a host synchronisation each) run
once per forward.

A model checks finite coordinates and graph ids once and passes ``validate=False`` to its
blocks; a convolution checks once for all its branches. Counted through the two functions the
checks call (``torch.isfinite`` and ``torch.aminmax``). The graph sizes that choose dense
blocks, pair lists or a neighbour list are read once per forward too (``sizes=``): counted as
every conversion of a tensor to a Python value (``int``, ``bool``, ``float``, ``item``,
``tolist``), whatever function makes it.
"""

from __future__ import annotations

import pytest
import torch

from flt3d.models import FLTNet, ImageClassifier, PointCloudClassifier, SequenceModel
from flt3d.nn import FLTConv
from flt3d.nn.graph import GraphSizes, dense_batch, graph_sizes
from flt3d.training import load_config

_READS = ("__int__", "__bool__", "__float__", "__index__", "item", "tolist")


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


@pytest.fixture
def reads(monkeypatch):
    """Conversions of tensors to Python values during the test (host reads)."""
    count = {"reads": 0}
    for name in _READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            count["reads"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return count


def _host_reads(reads, model, *inputs) -> int:
    reads["reads"] = 0
    with torch.no_grad():
        model(*inputs)
    return reads["reads"]


@pytest.mark.parametrize("attention", ["exact", "linear"])
@pytest.mark.parametrize("atoms", [30, 600], ids=["molecules", "neighbour-list"])
def test_fltnet_host_reads_do_not_grow_with_depth(reads, attention, atoms):
    # the shipped qm9 settings: a cutoff, the spectral filter, far attention; 30 atoms in 3
    # graphs take the dense layout, 600 atoms in 3 graphs of 200 the neighbour list
    gen = torch.Generator().manual_seed(0)
    z = torch.tensor([1, 6, 7, 8])[torch.randint(0, 4, (atoms,), generator=gen)]
    pos = 1.5 * (atoms / 30) ** (1 / 3) * torch.randn(atoms, 3, generator=gen)
    batch = torch.arange(3).repeat_interleave(atoms // 3)
    counts = []
    for num_layers in (1, 4):
        options = {**load_config("qm9")["model"], "num_layers": num_layers, "attention": attention}
        torch.manual_seed(0)
        counts.append(_host_reads(reads, FLTNet(**options), z, pos, batch))
    assert counts[0] == counts[1], counts
    # z range, finite coordinates, graph ids, graph sizes; a neighbour list (its batch check and
    # the space order) is built once for every block
    assert counts[0] <= (6 if attention == "linear" and atoms == 600 else 4), counts


def test_grid_and_cloud_models_read_sizes_once_causal_once_per_layer(reads):
    counts = []
    for num_layers in (1, 3):
        torch.manual_seed(0)
        image = ImageClassifier(
            image_size=8, patch_size=2, in_channels=1, num_classes=3, hidden_channels=8,
            num_layers=num_layers, heads=2,
        )  # fmt: skip
        sequence = SequenceModel(vocab_size=5, hidden_channels=8, num_layers=num_layers, heads=2)
        cloud = PointCloudClassifier(3, hidden_channels=8, num_layers=num_layers, heads=2)
        counts.append(
            (
                _host_reads(reads, image, torch.randn(2, 1, 8, 8)),
                _host_reads(
                    reads, cloud, torch.randn(20, 3), torch.randn(20, 3),
                    torch.arange(2).repeat_interleave(10),
                ),  # fmt: skip
                _host_reads(reads, sequence, torch.randint(0, 5, (2, 12))),
            )
        )
    assert counts[0][:2] == counts[1][:2], counts
    # causal attention runs graph by graph: one read per layer (row order and graph sizes
    # for its chunks), not one per chunk
    assert counts[1][2] - counts[0][2] == 2, counts


def test_layers_use_the_sizes_they_are_given(reads):
    _, pos, batch = _molecules()
    sizes = graph_sizes(batch, 3)
    assert sizes == GraphSizes(num_graphs=3, num_nodes=30, largest=10, squares=300)
    x = torch.randn(30, 8)
    for attention in ("exact", "linear"):
        torch.manual_seed(0)
        conv = FLTConv(8, 8, heads=2, attention=attention, spectral_filter=True, cutoff=2.0)
        with torch.no_grad():
            expected = conv(x, pos, batch)
            reads["reads"] = 0
            out = conv(x, pos, batch, num_graphs=3, validate=False, sizes=sizes)
        assert reads["reads"] == 0
        torch.testing.assert_close(out, expected)


def test_sizes_of_another_batch_are_refused():
    _, pos, batch = _molecules()
    conv = FLTConv(8, 8, heads=2)
    with pytest.raises(ValueError, match="sizes are for 20 nodes in 2 graphs"):
        conv(torch.randn(30, 8), pos, batch, sizes=GraphSizes(2, 20, 10, 200))


@pytest.mark.parametrize(
    "batch, num_graphs, expected",
    [
        ([], 0, (0, 0, 0)),
        ([], 2, (0, 0, 0)),
        ([0, 0, 0], 1, (3, 3, 9)),
        ([2, 0, 2, 2], 4, (4, 3, 10)),  # unsorted, with empty graphs 1 and 3
    ],
)
def test_graph_sizes(batch, num_graphs, expected):
    sizes = graph_sizes(torch.tensor(batch, dtype=torch.long), num_graphs)
    assert (sizes.num_nodes, sizes.largest, sizes.squares) == expected
    assert sizes.num_graphs == num_graphs


def test_small_and_padded_layouts():
    assert GraphSizes(3, 30, 10, 300).small()
    assert not GraphSizes(3, 300, 100, 30_000).small()  # graphs above the dense limit
    lopsided = GraphSizes(10, 19, 10, 109)  # one graph of 10 atoms and nine of one
    assert not lopsided.small() and not lopsided.padded()
    assert not GraphSizes(2, 0, 0, 0).padded()


def test_dense_batch_matches_the_flat_rows():
    batch = torch.tensor([1, 0, 1, 1, 0])
    x = torch.arange(10.0).view(5, 2)
    (dense,), real, perm = dense_batch([x], batch, graph_sizes(batch, 2))
    assert dense.shape == (2, 3, 2)
    assert real.tolist() == [[True, True, False], [True, True, True]]
    torch.testing.assert_close(dense[real], x[perm])
    assert torch.equal(batch[perm], torch.tensor([0, 0, 1, 1, 1]))
