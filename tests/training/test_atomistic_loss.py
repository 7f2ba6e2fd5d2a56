import pytest
import torch
from torch_geometric.data import Batch, Data

from flt3d.atomistic import make_head
from flt3d.training.atomistic_loss import (
    check_loss,
    head_baseline,
    scale_or_one,
    spread,
    standardised_loss,
)


def _batch():
    gen = torch.Generator().manual_seed(0)
    molecules = [
        Data(z=torch.tensor([6, 1, 1, 1, 1]), pos=torch.randn(5, 3, generator=gen)),
        Data(z=torch.tensor([8, 1, 1]), pos=torch.randn(3, 3, generator=gen)),
    ]
    return Batch.from_data_list(molecules)


@pytest.mark.parametrize("name", ["extensive", "intensive", "dipole", "spatial_extent"])
def test_head_baseline_is_the_head_with_a_zero_network(name):
    head = make_head(name, 4)
    head.set_statistics(0.5, 2.0, {"H": -0.5, "C": -38.0, "O": -75.0})
    batch = _batch()
    with torch.no_grad():
        head.mlp[-1].weight.zero_()
        head.mlp[-1].bias.zero_()
        h = torch.randn(batch.num_nodes, 4)
        expected = head(h, batch.z, batch.pos, batch.batch, num_graphs=batch.num_graphs)[:, 0]
    got = head_baseline(head, batch)
    assert got.shape == (2,) and got.dtype == head.mean.dtype
    assert torch.allclose(got, expected)
    if name == "extensive":
        assert got.tolist() == pytest.approx([-38.0 - 2.0 + 2.5, -75.0 - 1.0 + 1.5])


def test_spread_is_the_std_or_one():
    values = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    assert spread(values) == pytest.approx(values.std().item())
    assert spread(torch.tensor([3.0])) == 1.0  # undefined
    assert spread(torch.tensor([3.0, 3.0])) == 1.0  # zero
    assert scale_or_one(0.25) == 0.25 and scale_or_one(0.0) == 1.0


def test_standardised_loss_and_its_check():
    error = torch.tensor([-2.0, 1.0])
    assert standardised_loss(error, "l1").item() == pytest.approx(1.5)
    assert standardised_loss(error, "mse").item() == pytest.approx(2.5)
    assert check_loss("mse") == "mse"
    with pytest.raises(ValueError, match="module.loss must be one of"):
        check_loss("huber")
