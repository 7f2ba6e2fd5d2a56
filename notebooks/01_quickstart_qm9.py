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
# # Quickstart: FLTNet on QM9
#
# FLTNet is a molecular property model whose only view of geometry is the learned
# relative positional encoding (RPE) of FourierLearner attention: a function
# $f(\Delta)$ of the displacement between two atoms, learned through its Fourier
# spectrum. This notebook
#
# 1. loads the 4,000-molecule QM9 sample that ships with flt3d (no download),
# 2. trains a small FLTNet on the HOMO-LUMO gap for a few minutes on a CPU,
# 3. plots the learning curve and the test predictions,
# 4. predicts the gap of new molecules from SMILES.
#
# Set `FLT3D_NOTEBOOK_FAST=1` to run everything with toy settings in seconds.

# %%
import os

import torch

torch.manual_seed(0)
FAST = os.environ.get("FLT3D_NOTEBOOK_FAST") == "1"  # tiny settings, set by the test suite

# %% [markdown]
# ## The data
#
# `QM9(root, sample=True)` reads the bundled sample and caches the processed graphs in
# `root`. Every molecule is a PyTorch Geometric `Data` with atomic numbers `z`,
# coordinates `pos` in Å and the 12 targets in `y`, in PyG's order and units. The
# standard split cuts the sample in the proportions of the usual 110k / 10k / 10.8k
# split of the full set.

# %%
from flt3d.datasets import QM9, TARGETS, UNITS
from flt3d.training.molecules import default_data_root

root = os.path.join(default_data_root(), "qm9")  # $FLT3D_DATA or ~/.cache/flt3d
dataset = QM9(root, sample=True, log=False)
train_idx, val_idx, test_idx = dataset.standard_split()
print(dataset, "| train / val / test:", len(train_idx), len(val_idx), len(test_idx))

molecule = dataset[0]
print(molecule, molecule.smiles)
for name, value, unit in zip(TARGETS, molecule.y[0].tolist(), UNITS):
    print(f"  {name:5s} {value:12.4f} {unit}")

# %% [markdown]
# ## Configure a run
#
# Training goes through the same configuration as the `flt3d train` command: the shipped
# `qm9` configuration, changed with `section.key=value` overrides. The cell below is the
# Python form of
#
# ```
# flt3d train --set model.target=gap
# ```

# %%
import yaml

from flt3d.training import apply_overrides, load_config

overrides = [
    "model.target=gap",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]
if FAST:
    overrides += [
        "model.hidden_channels=16",
        "model.num_layers=1",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=30",
        "trainer.log_every_n_steps=5",
        "optim.warmup_steps=5",
    ]
config = apply_overrides(load_config("qm9"), overrides)
print(yaml.safe_dump(config, sort_keys=False))

# %% [markdown]
# ## Train
#
# `prepare_fit` checks the configuration and builds the model, the data module and a
# Lightning `Trainer`; `run()` trains, keeps the checkpoint with the lowest validation
# error and evaluates it on the validation and test sets. Everything lands in the run
# folder: `checkpoints/best.ckpt`, CSV and TensorBoard logs, `results.yaml`.

# %%
import tempfile

from flt3d.training import prepare_fit

os.makedirs("runs", exist_ok=True)
output = tempfile.mkdtemp(prefix="quickstart-", dir="runs")
run = prepare_fit(config, output)
evaluations = run.run()
for evaluation in evaluations:
    print(*evaluation.lines)

# %% [markdown]
# ## Learning curve
#
# Lightning's CSV logger wrote `metrics.csv`; `flt3d.plot.learning_curve` reads it. Here
# the training and validation MAE of each epoch, in meV (`train/mae_step` holds the
# training MAE every few steps).

# %%
from flt3d.plot import learning_curve, predicted_vs_true

metrics_csv = os.path.join(run.trainer.logger.log_dir, "metrics.csv")
fig = learning_curve(metrics_csv, keys=["train/mae_epoch", "val/mae"])
fig.axes[0].set_ylabel("MAE of the gap [meV]");

# %% [markdown]
# ## Test predictions
#
# `load_module` rebuilds the trained model from the checkpoint file alone (architecture,
# weights, target statistics). Its forward pass takes a flat PyG batch, like PyG's
# `SchNet`: `model(z, pos, batch)`.

# %%
from flt3d.training import load_module

task, module, entry = load_module(run.best_checkpoint)
pred, true = [], []
with torch.no_grad():
    for batch in run.datamodule.loader("test"):
        pred.append(module(batch.z, batch.pos, batch.batch)[:, 0])
        true.append(batch.y[:, module.column])
fig = predicted_vs_true(
    torch.cat(pred), torch.cat(true), unit=module.model_unit, name=module.target
)

# %% [markdown]
# ## Predict from SMILES
#
# `from_smiles` embeds a molecule in 3D with RDKit (hydrogens added, force-field relaxed)
# and returns a `Data` the model accepts. The first molecule of the sample, cyanogen
# `N#CC#N`, is listed with its DFT value for comparison; its geometry here comes from the
# force field, not from DFT.

# %%
from flt3d.datasets import from_smiles

smiles = ["N#CC#N", "CCO", "c1ccccc1", "CC(=O)N"]
molecules = [from_smiles(s) for s in smiles]
predictions = module.predict_molecules(molecules)
for s, value in zip(smiles, predictions.tolist()):
    print(f"{s:10s} predicted {module.target} = {value:.3f} {module.model_unit}")
print(f"N#CC#N in QM9: {float(molecule.y[0, module.column]):.3f} {module.model_unit} (DFT)")

# %% [markdown]
# The command line does the same from a checkpoint:
# `flt3d predict --checkpoint runs/.../checkpoints/best.ckpt --smiles CCO`. Its Python
# entry point is `flt3d.cli.main`:

# %%
from flt3d.cli import main

exit_code = main(["predict", "--checkpoint", run.best_checkpoint, "--smiles", "CCO"])
assert exit_code == 0
