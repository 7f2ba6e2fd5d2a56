"""FLTConv as one PyG layer among others: Sequential, pooling and PyG's DataLoader."""

import torch
from torch import nn
from torch_geometric.loader import DataLoader
from torch_geometric.nn import Sequential, global_add_pool

from flt3d.datasets import QM9_SAMPLE_PATH, read_qm9_csv, target_index
from flt3d.nn import FLTConv


def test_pyg_sequential_with_fltconv_trains_on_molecules():
    torch.manual_seed(0)
    molecules = read_qm9_csv(QM9_SAMPLE_PATH, nrows=64)
    column = target_index("zpve")  # extensive: a sum over atoms suits it
    y = torch.cat([m.y[:, column] for m in molecules])
    mean, std = y.mean(), y.std()
    for m in molecules:
        m.target = (m.y[:, column] - mean) / std
    loader = DataLoader(molecules, batch_size=16, shuffle=True)

    options = dict(heads=4, spectrum="isotropic_mixture", num_features=16, num_frequencies=8)
    model = Sequential(
        "z, pos, batch",
        [
            (nn.Embedding(10, 32), "z -> x"),
            (FLTConv(32, 32, length_scale=0.5, **options), "x, pos, batch -> x"),
            nn.SiLU(),
            (FLTConv(32, 32, attention="exact", **options), "x, pos, batch -> x"),
            nn.SiLU(),
            nn.Linear(32, 1),
            (global_add_pool, "x, batch -> x"),
        ],
    )
    assert any(isinstance(layer, FLTConv) for layer in model.modules())
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def epoch(train: bool) -> float:
        total = 0.0
        for data in loader:
            out = model(data.z, data.pos, data.batch).flatten()
            assert out.shape == (data.num_graphs,)
            loss = (out - data.target).pow(2).mean()
            if train:
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            total += loss.item() * data.num_graphs
        return total / len(molecules)

    with torch.no_grad():
        before = epoch(train=False)
    for _ in range(4):
        epoch(train=True)
    with torch.no_grad():
        after = epoch(train=False)
    assert after < 0.5 * before
