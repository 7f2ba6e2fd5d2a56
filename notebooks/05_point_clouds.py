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
# # Point clouds: shapes classified through a learned RPE
#
# A point cloud is a set of points in 3D, here sampled on the surface of a shape, each with
# the normal of the surface where it lies. `PointCloudClassifier` runs FLT blocks over the
# points of a cloud, pools them and classifies the shape. Geometry enters only through the
# attention's learned relative positional encoding (RPE) $f(r_i - r_j)$, here an isotropic
# Gaussian mixture (a function of the distance $|r_i - r_j|$, whatever the orientation),
# so the logits do not depend on where the cloud sits or on the order of its points.
# This notebook
#
# 1. loads the ten classes of synthetic shapes that ship with flt3d (no download) and
#    draws a few clouds,
# 2. trains a small classifier for about half a minute on a CPU,
# 3. colours clouds by the attention one point pays to the others,
# 4. plots the RPE each head learned.
#
# Set `FLT3D_NOTEBOOK_FAST=1` to run everything with toy settings in seconds.

# %%
import os

import matplotlib.pyplot as plt
import torch

torch.manual_seed(0)
FAST = os.environ.get("FLT3D_NOTEBOOK_FAST") == "1"  # tiny settings, set by the test suite

# %% [markdown]
# ## The shapes
#
# `shapes_sample_root()` unpacks the shipped sample into a folder in the layout of
# ModelNet, `<class>/{train,test}/*.off`: 40 training and 10 test meshes per class,
# randomly deformed and oriented primitives. `ModelNetFolder` samples `num_points` points
# on each surface (area-weighted), with their normals, puts every shape in the unit
# sphere and caches the result. The same class reads ModelNet10 or ModelNet40 once
# unzipped. `shape_augmentation()` turns each training cloud about the $z$ axis by a
# random angle, scales and jitters it, afresh at every access.

# %%
from flt3d.datasets import ModelNetFolder, shape_augmentation, shapes_sample_root

folder = shapes_sample_root()  # unpacked once into $FLT3D_DATA or ~/.cache/flt3d
num_points = 128
train = ModelNetFolder(
    folder, split="train", num_points=num_points, transform=shape_augmentation()
)
test = ModelNetFolder(folder, split="test", num_points=num_points)
print(train, test, sep="\n")
print("classes:", ", ".join(train.classes))
print(test[0])


# %%
def show(ax, cloud, color, title, cmap="viridis"):
    p = cloud.pos
    ax.scatter(p[:, 0], p[:, 1], p[:, 2], c=color, cmap=cmap, s=8, depthshade=False)
    ax.set(xlim=(-1, 1), ylim=(-1, 1), zlim=(-1, 1), box_aspect=(1, 1, 1))
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


fig = plt.figure(figsize=(12, 5), layout="constrained")
for label, name in enumerate(test.classes):
    cloud = test[int((test.y == label).nonzero()[0])]
    show(fig.add_subplot(2, 5, label + 1, projection="3d"), cloud, cloud.pos[:, 2], name)

# %% [markdown]
# ## Train a small classifier
#
# The model reads the normals as the points' features (`in_channels=3`) and their
# coordinates only through the RPE. With 128 points per cloud, exact attention (all
# $128^2$ pairs, the same function that linear attention estimates with random features)
# is cheap, and it makes the attention weights below the ones the model applies. A plain
# PyTorch loop, AdamW with a one-cycle schedule, batches of 16 clouds.

# %%
import torch.nn.functional as F
from torch_geometric.loader import DataLoader

from flt3d.models import PointCloudClassifier

model = PointCloudClassifier(
    train.num_classes,
    hidden_channels=32,
    num_layers=2,
    heads=4,
    attention="exact",
    classes=train.classes,
)
print(model)


@torch.no_grad()
def test_accuracy(model):
    model.eval()
    batch = next(iter(DataLoader(test, batch_size=len(test))))
    pred = model(batch.normal, batch.pos, batch.batch).argmax(-1)
    model.train()
    return float((pred == batch.y).float().mean())


steps = 30 if FAST else 400
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps)
step = 0
while step < steps:
    for batch in DataLoader(train, batch_size=16, shuffle=True):
        loss = F.cross_entropy(model(batch.normal, batch.pos, batch.batch), batch.y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        step += 1
        if step == steps:
            break
print(f"test accuracy after {steps} steps: {test_accuracy(model):.0%} (chance: 10 %)")

# %% [markdown]
# ## Where one point looks
#
# `model.attention_weights(normal, pos, layer=k)` returns the attention weights of block
# `k` on one cloud, `[P, P, heads]`, each row summing to one: `a[i, :, h]` is how point
# `i` spreads its attention over the cloud in head `h`. In exact mode these are the
# weights the model applies, $\exp(q_i\cdot k_j/\sqrt d + \hat f(r_i - r_j))$
# normalised over $j$. Below, the query is the highest point of each cloud (the star);
# brighter points get more of its attention. A head whose RPE is large at short
# distances and falls off (see the next plot) looks around the query; a head with a
# weak RPE reaches across the shape, to the points its content term
# $q_i \cdot k_j$ picks: in the first layer a function of the two points' normals only.

# %%
model.eval()
layer = 0
names = ("box", "cone", "torus")
picks = [int((test.y == test.classes.index(name)).nonzero()[0]) for name in names]
fig = plt.figure(figsize=(12, 8), layout="constrained")
for row, index in enumerate(picks):
    cloud = test[index]
    weights = model.attention_weights(cloud.normal, cloud.pos, layer=layer)
    query = int(cloud.pos[:, 2].argmax())
    heads = weights.shape[-1]
    for h in range(heads):
        ax = fig.add_subplot(len(picks), heads, row * heads + h + 1, projection="3d")
        name = test.classes[int(cloud.y)]
        show(ax, cloud, weights[query, :, h], f"{name}, layer {layer}, head {h}", "magma")
        star = cloud.pos[query].tolist()
        ax.scatter(*star, c="cyan", s=90, marker="*", depthshade=False)

# %% [markdown]
# ## The learned RPE
#
# `plot.rpe_profile` draws each head's $\hat f(|\Delta|)$ with the layer's own 16
# frequencies (solid) and its $R \to \infty$ limit (dashed), over distances up to 2, the
# diameter of the unit sphere. A head whose $f$ falls off attends locally; a flat one
# leaves the choice to the content term.

# %%
from flt3d import plot

fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True, layout="constrained")
for k, ax in enumerate(axes):
    plot.rpe_profile(model, layer=k, max_distance=2.0, ax=ax)
    ax.set_title(f"layer {k}, after {steps} steps")

# %% [markdown]
# ## Same weights, linear attention
#
# `set_attention` switches the model to linear attention, $O(P)$ per cloud with 64
# random features, the mode large clouds need. The parameters and the RPE stay the same;
# the kernel becomes an estimate, and a model trained in exact mode pays for that
# estimate's error. Training in linear mode (the model's default), with fresh random
# features at every step, teaches the model to live with it.

# %%
from flt3d.nn import set_attention

exact = test_accuracy(model)
linear = test_accuracy(set_attention(model, "linear"))
set_attention(model, "exact")
print(f"test accuracy: exact {exact:.0%}, linear (64 random features) {linear:.0%}")
