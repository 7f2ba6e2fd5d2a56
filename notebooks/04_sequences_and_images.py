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
# # Sequences and images: tokens on a grid
#
# FLT layers take coordinates of any dimension. Characters of a text sit at positions
# $0, 1, 2, \dots$ on a line; patches of an image at (row, column) on a plane. This
# notebook trains a causal character language model on CPython's documentation (1D)
# and an image classifier on scikit-learn's 8×8 digits (2D), both with the **local RPE**:
# a mask concentrated on $\lVert\Delta\rVert_\infty \le v$, learned through its
# spectrum (a smoothed box, whose Fourier transform is a product of sincs), with a
# learnable radius $v$ per head.

# %%
import os

import matplotlib.pyplot as plt
import torch

torch.manual_seed(0)
FAST = os.environ.get("FLT3D_NOTEBOOK_FAST") == "1"  # tiny settings, set by the test suite

# %% [markdown]
# ## Flat batches on a grid
#
# `flt3d.datasets.grid` turns `[B, L, C]` sequences and `[B, C, H, W]` images into the
# flat `(x, pos, batch)` form the layers take; one grid step is one unit of `pos`.

# %%
from flt3d.datasets.grid import flatten_image, flatten_sequence

x, pos, batch = flatten_sequence(torch.zeros(2, 5, 8))
print("sequence:", tuple(x.shape), pos[:5, 0].tolist(), batch.tolist())
x, pos, batch = flatten_image(torch.zeros(1, 3, 2, 3))
print("image:", tuple(x.shape), pos.tolist())

# %% [markdown]
# ## 1D: a character language model on pydoc text
#
# `CharCorpus.from_pydoc()` is the English text of Python's built-in help topics, about
# 465k characters, with no download. `SequenceModel` embeds characters, runs causal FLT
# blocks (token $t$ attends to $0..t$) and predicts the next character. The loss is
# reported in bits per character.

# %%
import math
import sys

import torch.nn.functional as F
from torch.utils.data import DataLoader

from flt3d import plot
from flt3d.datasets.text import CharCorpus
from flt3d.models import SequenceModel

corpus = CharCorpus.from_pydoc()
print(corpus, "| Python", sys.version.split()[0])
length, steps = (32, 15) if FAST else (64, 400)
train = corpus.dataset("train", length, num_windows=16 * steps, seed=0)
val = corpus.dataset("val", length)
lm = SequenceModel(
    len(corpus.vocab),
    hidden_channels=64,
    num_layers=2,
    heads=4,
    spectrum="local",
    attention="exact",  # the same model runs linear attention too
)


@torch.no_grad()
def bits_per_char(model, dataset, max_windows=64):
    x, y = next(iter(DataLoader(dataset, batch_size=max_windows)))
    return float(F.cross_entropy(model(x).flatten(0, 1), y.flatten())) / math.log(2)


optimizer = torch.optim.AdamW(lm.parameters(), lr=3e-3)
for x, y in DataLoader(train, batch_size=16):
    loss = F.cross_entropy(lm(x).flatten(0, 1), y.flatten())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
print(f"validation: {bits_per_char(lm, val):.2f} bits per character after {steps} steps")

# %% [markdown]
# The learned local RPE of the first layer. In causal attention only $\Delta \ge 0$
# (the query at or after the key) is used. Solid: $\hat f$ with 16 frequencies, dashed:
# its limit, the smoothed box of radius $v$.

# %%
radius = lm.blocks[0].conv.attn.spectrum.radius.detach()
print("learned radius v per head (tokens):", [round(v, 2) for v in radius.tolist()])
fig = plot.rpe_profile(lm, max_distance=12.0)


# %%
@torch.no_grad()
def sample(model, prompt, n=120, temperature=0.7):
    ids = corpus.vocab.encode(prompt).unsqueeze(0)
    for _ in range(n):
        logits = model(ids[:, -length:])[0, -1] / temperature
        ids = torch.cat([ids, torch.multinomial(logits.softmax(-1), 1).view(1, 1)], 1)
    return corpus.vocab.decode(ids[0])


torch.manual_seed(1)
print(sample(lm, "The "))

# %% [markdown]
# ## 2D: digits as a grid of patches
#
# `ImageClassifier` cuts each 8×8 image into 2×2 patches, a 4×4 grid of tokens at
# integer (row, column) coordinates, and runs bidirectional FLT blocks with a 2D local
# RPE, then mean pooling. `length_scale=0.5` starts the box at a radius of two patches.

# %%
from flt3d.datasets.digits import load_digits_splits
from flt3d.models import ImageClassifier

splits = load_digits_splits()
images = ImageClassifier(
    hidden_channels=32,
    num_layers=2,
    heads=4,
    patch_size=2,
    spectrum="local",
    length_scale=0.5,
)
epochs = 1 if FAST else 12
optimizer = torch.optim.AdamW(images.parameters(), lr=3e-3)
for _ in range(epochs):
    for x, y in DataLoader(splits["train"], batch_size=32, shuffle=True):
        loss = F.cross_entropy(images(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
with torch.no_grad():
    x, y = splits["test"][:]
    accuracy = float((images(x).argmax(1) == y).float().mean())
print(f"test accuracy after {epochs} epoch(s): {accuracy:.1%} ({len(y)} images)")

# %% [markdown]
# A 2D spectrum is not isotropic, so `rpe_profile` draws slices along each axis (the
# other coordinate at 0). The full map $\hat f(\Delta_\mathrm{row}, \Delta_\mathrm{col})$
# of each head comes straight from the layer's `rpe` method.

# %%
fig = plot.rpe_profile(images, max_distance=4.0)

# %%
attention = images.blocks[0].conv.attn
steps_2d = torch.arange(-3, 4, dtype=torch.float32)
grid = torch.stack(torch.meshgrid(steps_2d, steps_2d, indexing="ij"), dim=-1)
with torch.no_grad():
    f_hat = attention.rpe(grid)  # [7, 7, heads]
fig, axes = plt.subplots(1, attention.heads, figsize=(3 * attention.heads, 3), layout="constrained")
radius = attention.spectrum.radius.detach()
for h, ax in enumerate(axes):
    im = ax.imshow(f_hat[..., h], extent=(-3.5, 3.5, 3.5, -3.5), cmap="viridis")
    ax.set_title(f"head {h}, v = {radius[h]:.2f}")
    ax.set_xlabel(r"$\Delta_\mathrm{col}$")
axes[0].set_ylabel(r"$\Delta_\mathrm{row}$")
fig.colorbar(im, ax=axes, shrink=0.8);
