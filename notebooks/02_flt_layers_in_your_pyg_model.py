# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # FLT layers in your own PyG model
#
# `FLTConv` is an ordinary PyTorch Geometric-style layer: `conv(x, pos, batch)` on a flat
# batch, with the same `x`/`batch` conventions as `GCNConv` or `PointTransformerConv`.
# It attends over all tokens of each graph (no edges needed), weighted by a learned RPE
# of the displacements `pos[i] - pos[j]`. Here it sits between two `GCNConv` layers in a
# `torch_geometric.nn.Sequential` model, trained with a plain PyTorch loop on QM9 graphs
# from a PyG `DataLoader`.

# %%
import os

import torch

torch.manual_seed(0)
FAST = os.environ.get("FLT3D_NOTEBOOK_FAST") == "1"  # tiny settings, set by the test suite

# %% [markdown]
# ## Graphs with node features and edges
#
# The QM9 sample gives atomic numbers and coordinates. A transform (any callable works
# in PyG) adds one-hot element features `x` and a radius graph `edge_index` for the
# `GCNConv` layers: atoms closer than 2 Å, which covers every covalent bond in QM9.

# %%
import torch.nn.functional as F
from torch_geometric.loader import DataLoader

from flt3d.datasets import QM9, QM9_Z, target_index
from flt3d.training.molecules import default_data_root

ELEMENT_ROW = torch.full((max(QM9_Z) + 1,), -1, dtype=torch.long)
ELEMENT_ROW[list(QM9_Z)] = torch.arange(len(QM9_Z))
GAP = target_index("gap")


def add_features_and_edges(data, cutoff=2.0):
    data = data.clone()
    data.x = F.one_hot(ELEMENT_ROW[data.z], len(QM9_Z)).float()
    near = torch.cdist(data.pos, data.pos) < cutoff
    near.fill_diagonal_(False)
    data.edge_index = near.nonzero().t()
    return data


root = os.path.join(default_data_root(), "qm9")
dataset = QM9(root, sample=True, log=False, transform=add_features_and_edges)
train_idx, val_idx, test_idx = dataset.standard_split()
train_loader = DataLoader(dataset[train_idx], batch_size=32, shuffle=True)
val_loader = DataLoader(dataset[val_idx], batch_size=256)
batch = next(iter(train_loader))
print(batch)

y_train = torch.cat([data.y[:, GAP] for data in dataset[train_idx]])
mean, std = float(y_train.mean()), float(y_train.std())
print(f"gap over the training set: {mean:.3f} ± {std:.3f} eV")

# %% [markdown]
# ## The model
#
# `Sequential` routes the arguments: `GCNConv` reads `x, edge_index`, `FLTConv` reads
# `x, pos, batch`. The FLT layer uses an isotropic spectrum (its RPE depends on distances
# only) and exact attention, the faster choice for graphs of at most 29 atoms; on large
# point clouds use `attention="linear"` (the default), which never forms an N × N matrix.

# %%
from torch import nn
from torch_geometric.nn import GCNConv, Sequential, global_mean_pool

from flt3d.nn import FLTConv, set_attention

hidden = 32 if FAST else 64
model = Sequential(
    "x, edge_index, pos, batch",
    [
        (nn.Linear(len(QM9_Z), hidden), "x -> x"),
        (GCNConv(hidden, hidden), "x, edge_index -> x"),
        nn.SiLU(),
        (
            FLTConv(
                hidden,
                hidden,
                heads=4,
                spectrum="isotropic_mixture",
                attention="exact",
                length_scale=0.5,  # Å: the shortest length the RPE resolves
            ),
            "x, pos, batch -> x",
        ),
        nn.SiLU(),
        (GCNConv(hidden, hidden), "x, edge_index -> x"),
        nn.SiLU(),
        (global_mean_pool, "x, batch -> x"),
        nn.Linear(hidden, 1),
    ],
)
print(model)


# %% [markdown]
# ## Train briefly
#
# The target is standardised with the training mean and standard deviation; the MAE is
# reported in eV next to the MAE of always predicting the mean.

# %%
@torch.no_grad()
def val_mae(model):
    model.eval()
    total = 0.0
    for b in val_loader:
        pred = model(b.x, b.edge_index, b.pos, b.batch)[:, 0] * std + mean
        total += float((pred - b.y[:, GAP]).abs().sum())
    model.train()
    return total / len(val_loader.dataset)


baseline = float((torch.cat([b.y[:, GAP] for b in val_loader]) - mean).abs().mean())
epochs, max_steps = (1, 30) if FAST else (15, None)
optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
history = {"step": [], "train MAE [eV], moving average": [], "val MAE [eV]": []}
step, smooth = 0, None
for epoch in range(epochs):
    for b in train_loader:
        pred = model(b.x, b.edge_index, b.pos, b.batch)[:, 0]
        loss = F.l1_loss(pred, (b.y[:, GAP] - mean) / std)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        history["step"].append(step)
        smooth = loss.item() if smooth is None else 0.95 * smooth + 0.05 * loss.item()
        history["train MAE [eV], moving average"].append(smooth * std)
        history["val MAE [eV]"].append(float("nan"))
        if max_steps and step >= max_steps:
            break
    history["val MAE [eV]"][-1] = val_mae(model)
    print(
        f"epoch {epoch}: val MAE {history['val MAE [eV]'][-1]:.3f} eV "
        f"(mean predictor {baseline:.3f} eV)"
    )

# %% [markdown]
# `plot.learning_curve` takes Lightning's `metrics.csv`, a pandas `DataFrame` or, as
# here, a dict of columns (empty cells as `nan`).

# %%
from flt3d.plot import learning_curve

fig = learning_curve(history)
fig.axes[0].axhline(baseline, color="0.5", ls=":", label="mean predictor")
fig.axes[0].legend();

# %% [markdown]
# ## Same weights, linear attention
#
# `set_attention` switches every FLT layer inside any model between `"exact"` and
# `"linear"`. Both modes use the same parameters and the same RPE; linear mode estimates
# the softmax kernel with `num_features` random features (64 here), so its predictions
# differ from the exact ones by the estimator's error, which shrinks as `num_features`
# grows (notebook 03 measures it).

# %%
exact = val_mae(model)
set_attention(model, "linear")
linear = val_mae(model)
set_attention(model, "exact")
print(f"val MAE exact {exact:.4f} eV, linear (64 random features) {linear:.4f} eV")
