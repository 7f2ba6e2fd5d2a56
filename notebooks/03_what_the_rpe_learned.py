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
# # What the RPE learned
#
# Each head of an FLT layer weights a pair of tokens by $\exp(q\cdot k/\sqrt d +
# f(r_i - r_j))$, and $f$ is learned through its spectral density $g$:
# $f(\Delta) = \int g(\xi) e^{2\pi i \xi\cdot\Delta} d\xi$. The layer evaluates it
# with $R$ frequencies $\xi_r$ drawn once from a proposal $p$,
#
# $$\hat f(\Delta) = \frac1R \sum_r a_r \cos(2\pi\xi_r\cdot\Delta), \qquad
# a_r = g(\xi_r) / p(\xi_r).$$
#
# This notebook trains a small FLTNet on the QM9 sample with a plain PyTorch loop and
# looks at $\hat f$ (what the layer applies), its $R\to\infty$ limit $f$ (what the
# parameters mean), and the density $g$, before and after training. It ends with the
# error of linear attention against exact attention as the number of random features
# grows.

# %%
import os

import matplotlib.pyplot as plt
import torch

torch.manual_seed(0)
FAST = os.environ.get("FLT3D_NOTEBOOK_FAST") == "1"  # tiny settings, set by the test suite

# %%
import copy

import torch.nn.functional as F
from torch_geometric.loader import DataLoader

from flt3d import plot
from flt3d.datasets import QM9, target_index
from flt3d.models import FLTNet, fit_statistics
from flt3d.training.molecules import default_data_root

dataset = QM9(os.path.join(default_data_root(), "qm9"), sample=True, log=False)
train_idx, val_idx, test_idx = dataset.standard_split()
train_loader = DataLoader(dataset[train_idx], batch_size=32, shuffle=True)
val_loader = DataLoader(dataset[val_idx], batch_size=256)

# %% [markdown]
# ## A small FLTNet
#
# The target is the HOMO-LUMO gap (eV), predicted by FLTNet's intensive head (an average
# of per-atom contributions) in units of the training set's mean and standard deviation,
# which `fit_statistics` sets. The network sees the geometry through two learned spectral
# functions of distance: the attention's RPE (an isotropic Gaussian mixture, 4 components
# per head) and, beside the attention, one spectral filter per channel on a learned radial
# basis, whose unnormalised sums $\sum_j f_c(|r_i - r_j|)\,u_j$ can count neighbours.
# In exact mode both use their closed forms, which depend on $|\Delta|$ only.

# %%
target = "gap"
column = target_index(target)
model = FLTNet(hidden_channels=32, num_layers=2, heads=4, target=target)
model.set_statistics(*fit_statistics(model, dataset[train_idx]))
before = copy.deepcopy(model)


@torch.no_grad()
def val_mae(model):
    model.eval()
    err = 0.0
    for b in val_loader:
        err += float((model(b.z, b.pos, b.batch)[:, 0] - b.y[:, column]).abs().sum())
    model.train()
    return 1000 * err / len(val_loader.dataset)  # meV


steps = 40 if FAST else 600
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
print(f"val MAE before training: {val_mae(model):.0f} meV")
step = 0
while step < steps:
    for b in train_loader:
        pred = model(b.z, b.pos, b.batch)[:, 0]
        loss = F.l1_loss(pred, b.y[:, column]) / model.head.std[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        if step == steps:
            break
print(f"val MAE after {steps} steps: {val_mae(model):.0f} meV")

# %% [markdown]
# ## The learned $f(|\Delta|)$ of each head
#
# `plot.rpe_profile` draws each head of the first FLT layer of a model (or `layer=k`).
# Solid: $\hat f$ with the layer's own 16 frequencies, the RPE the layer applies (for an
# isotropic spectrum, averaged over the three coordinate axes). Dashed: the $R\to\infty$
# limit of the same parameters, here in closed form,
# $f(\Delta) = \sum_b w_b e^{-2\pi^2\sigma_b^2|\Delta|^2}$.
#
# At initialisation every head has the same parameters (identical dashed lines); the
# solid lines differ because each head has its own draw of frequencies. Training
# separates the heads: weights $w_b$ and widths $\sigma_b$ move. The gap between solid
# and dashed is the Monte Carlo error of 16 frequencies; it shrinks as $1/\sqrt R$.

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True, layout="constrained")
plot.rpe_profile(before, ax=axes[0])
plot.rpe_profile(model, ax=axes[1])
axes[0].set_title("layer 0, before training")
axes[1].set_title(f"layer 0, after {steps} steps");

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True, layout="constrained")
for layer, ax in enumerate(axes):
    plot.rpe_profile(model, layer=layer, ax=ax)
    ax.set_title(f"layer {layer}, after training")

# %% [markdown]
# ## The spectral density $g$
#
# `plot.spectrum` shows $g$ along a ray (lines) and at the layer's frequencies (dots,
# at $g(\xi_r) = a_r p(\xi_r)$). Narrow components of $g$ are long-range parts of $f$.

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True, layout="constrained")
plot.spectrum(before, ax=axes[0])
plot.spectrum(model, ax=axes[1])
axes[0].set_title("before training")
axes[1].set_title("after training")
spec = model.blocks[0].conv.attn.spectrum
print("weights w_b per head:\n", spec.weight.detach())
print("widths sigma_b per head:\n", spec.width.detach().squeeze(-1))

# %% [markdown]
# ## Linear attention converges to exact attention
#
# The model was trained with exact attention. Linear attention approximates the softmax
# kernel with $m$ positive random features at $O(N)$ cost; with the same RPE, its output
# converges to the exact one as $m$ grows. `plot.feature_convergence` measures the output
# RMSE over several draws of the features, here on the queries, keys and values the
# trained layer sees on real molecules (captured with a forward pre-hook). The dotted
# line is the $m^{-1/2}$ rate of a Monte Carlo average; how far above it the error stays
# depends on the inputs, since the variance of positive random features grows quickly
# with the norms of queries and keys. This is why FLTNet defaults to exact attention on
# molecules of at most 29 atoms and keeps linear attention for large inputs.

# %%
attention = model.blocks[0].conv.attn
captured = {}
hook = attention.register_forward_pre_hook(lambda module, args: captured.update(args=args))
batch = next(iter(DataLoader(dataset[test_idx], batch_size=16)))
with torch.no_grad():
    model(batch.z, batch.pos, batch.batch)
hook.remove()

features = (8, 32, 128) if FAST else (8, 16, 32, 64, 128, 256, 512)
fig = plot.feature_convergence(
    attention, inputs=captured["args"], features=features, repeats=2 if FAST else 8
)
