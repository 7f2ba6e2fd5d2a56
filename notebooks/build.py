"""Write the example notebooks from the cell sources below, without outputs.

The sources live here so that changes are reviewed as plain Python; the ``.ipynb`` files are
generated and never carry outputs (so none can go stale). After editing, run::

    python notebooks/build.py          # rewrite the notebooks
    python notebooks/build.py --check  # exit 1 if a notebook differs from its source here

Each notebook reads ``FLT3D_NOTEBOOK_FAST=1`` (set by ``tests/test_notebooks.py``) to shrink its
models and runs to a few seconds; without it, the settings are the real ones (minutes on a CPU).
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = os.path.dirname(os.path.abspath(__file__))

SETUP = """\
import os

import torch

torch.manual_seed(0)
FAST = os.environ.get("FLT3D_NOTEBOOK_FAST") == "1"  # tiny settings, set by the test suite
"""
SETUP_PLT = SETUP.replace("import torch\n", "import matplotlib.pyplot as plt\nimport torch\n")


def md(text: str) -> tuple[str, str]:
    return "markdown", textwrap.dedent(text).strip()


def code(text: str) -> tuple[str, str]:
    return "code", textwrap.dedent(text).strip()


QUICKSTART = [
    md(
        """
        # Quickstart: FLTNet on QM9

        FLTNet is a molecular property model whose only view of geometry is the learned
        relative positional encoding (RPE) of FourierLearner attention: a function
        $f(\\Delta)$ of the displacement between two atoms, learned through its Fourier
        spectrum. This notebook

        1. loads the 4,000-molecule QM9 sample that ships with flt3d (no download),
        2. trains a small FLTNet on the HOMO-LUMO gap for a few minutes on a CPU,
        3. plots the learning curve and the test predictions,
        4. predicts the gap of new molecules from SMILES.

        Set `FLT3D_NOTEBOOK_FAST=1` to run everything with toy settings in seconds.
        """
    ),
    code(SETUP),
    md(
        """
        ## The data

        `QM9(root, sample=True)` reads the bundled sample and caches the processed graphs in
        `root`. Every molecule is a PyTorch Geometric `Data` with atomic numbers `z`,
        coordinates `pos` in Å and the 12 targets in `y`, in PyG's order and units. The
        standard split cuts the sample in the proportions of the usual 110k / 10k / 10.8k
        split of the full set.
        """
    ),
    code(
        """
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
        """
    ),
    md(
        """
        ## Configure a run

        Training goes through the same configuration as the `flt3d train` command: the shipped
        `qm9` configuration, changed with `section.key=value` overrides. The cell below is the
        Python form of

        ```
        flt3d train --set model.target=gap
        ```
        """
    ),
    code(
        """
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
        """
    ),
    md(
        """
        ## Train

        `prepare_fit` checks the configuration and builds the model, the data module and a
        Lightning `Trainer`; `run()` trains, keeps the checkpoint with the lowest validation
        error and evaluates it on the validation and test sets. Everything lands in the run
        folder: `checkpoints/best.ckpt`, CSV and TensorBoard logs, `results.yaml`.
        """
    ),
    code(
        """
        import tempfile

        from flt3d.training import prepare_fit

        os.makedirs("runs", exist_ok=True)
        output = tempfile.mkdtemp(prefix="quickstart-", dir="runs")
        run = prepare_fit(config, output)
        evaluations = run.run()
        for evaluation in evaluations:
            print(*evaluation.lines)
        """
    ),
    md(
        """
        ## Learning curve

        Lightning's CSV logger wrote `metrics.csv`; `flt3d.plot.learning_curve` reads it. Here
        the training and validation MAE of each epoch, in meV (`train/mae_step` holds the
        training MAE every few steps).
        """
    ),
    code(
        """
        from flt3d.plot import learning_curve, predicted_vs_true

        metrics_csv = os.path.join(run.trainer.logger.log_dir, "metrics.csv")
        fig = learning_curve(metrics_csv, keys=["train/mae_epoch", "val/mae"])
        fig.axes[0].set_ylabel("MAE of the gap [meV]");
        """
    ),
    md(
        """
        ## Test predictions

        `load_module` rebuilds the trained model from the checkpoint file alone (architecture,
        weights, target statistics). Its forward pass takes a flat PyG batch, like PyG's
        `SchNet`: `model(z, pos, batch)`.
        """
    ),
    code(
        """
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
        """
    ),
    md(
        """
        ## Predict from SMILES

        `from_smiles` embeds a molecule in 3D with RDKit (hydrogens added, force-field relaxed)
        and returns a `Data` the model accepts. The first molecule of the sample, cyanogen
        `N#CC#N`, is listed with its DFT value for comparison; its geometry here comes from the
        force field, not from DFT.
        """
    ),
    code(
        """
        from flt3d.datasets import from_smiles

        smiles = ["N#CC#N", "CCO", "c1ccccc1", "CC(=O)N"]
        molecules = [from_smiles(s) for s in smiles]
        predictions = module.predict_molecules(molecules)
        for s, value in zip(smiles, predictions.tolist()):
            print(f"{s:10s} predicted {module.target} = {value:.3f} {module.model_unit}")
        print(f"N#CC#N in QM9: {float(molecule.y[0, module.column]):.3f} {module.model_unit} (DFT)")
        """
    ),
    md(
        """
        The command line does the same from a checkpoint:
        `flt3d predict --checkpoint runs/.../checkpoints/best.ckpt --smiles CCO`. Its Python
        entry point is `flt3d.cli.main`:
        """
    ),
    code(
        """
        from flt3d.cli import main

        exit_code = main(["predict", "--checkpoint", run.best_checkpoint, "--smiles", "CCO"])
        assert exit_code == 0
        """
    ),
]


PYG = [
    md(
        """
        # FLT layers in your own PyG model

        `FLTConv` is an ordinary PyTorch Geometric-style layer: `conv(x, pos, batch)` on a flat
        batch, with the same `x`/`batch` conventions as `GCNConv` or `PointTransformerConv`.
        It attends over all tokens of each graph (no edges needed), weighted by a learned RPE
        of the displacements `pos[i] - pos[j]`. Here it sits between two `GCNConv` layers in a
        `torch_geometric.nn.Sequential` model, trained with a plain PyTorch loop on QM9 graphs
        from a PyG `DataLoader`.
        """
    ),
    code(SETUP),
    md(
        """
        ## Graphs with node features and edges

        The QM9 sample gives atomic numbers and coordinates. A transform (any callable works
        in PyG) adds one-hot element features `x` and a radius graph `edge_index` for the
        `GCNConv` layers: atoms closer than 2 Å, which covers every covalent bond in QM9.
        """
    ),
    code(
        """
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
        """
    ),
    md(
        """
        ## The model

        `Sequential` routes the arguments: `GCNConv` reads `x, edge_index`, `FLTConv` reads
        `x, pos, batch`. The FLT layer uses an isotropic spectrum (its RPE depends on distances
        only) and exact attention, the faster choice for graphs of at most 29 atoms; on large
        point clouds use `attention="linear"` (the default), which never forms an N × N matrix.
        """
    ),
    code(
        """
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
        """
    ),
    md(
        """
        ## Train briefly

        The target is standardised with the training mean and standard deviation; the MAE is
        reported in eV next to the MAE of always predicting the mean.
        """
    ),
    code(
        """
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
        """
    ),
    md(
        """
        `plot.learning_curve` takes Lightning's `metrics.csv`, a pandas `DataFrame` or, as
        here, a dict of columns (empty cells as `nan`).
        """
    ),
    code(
        """
        from flt3d.plot import learning_curve

        fig = learning_curve(history)
        fig.axes[0].axhline(baseline, color="0.5", ls=":", label="mean predictor")
        fig.axes[0].legend();
        """
    ),
    md(
        """
        ## Same weights, linear attention

        `set_attention` switches every FLT layer inside any model between `"exact"` and
        `"linear"`. Both modes use the same parameters and the same RPE; linear mode estimates
        the softmax kernel with `num_features` random features (64 here), so its predictions
        differ from the exact ones by the estimator's error, which shrinks as `num_features`
        grows (notebook 03 measures it).
        """
    ),
    code(
        """
        exact = val_mae(model)
        set_attention(model, "linear")
        linear = val_mae(model)
        set_attention(model, "exact")
        print(f"val MAE exact {exact:.4f} eV, linear (64 random features) {linear:.4f} eV")
        """
    ),
]


RPE = [
    md(
        """
        # What the RPE learned

        Each head of an FLT layer weights a pair of tokens by $\\exp(q\\cdot k/\\sqrt d +
        f(r_i - r_j))$, and $f$ is learned through its spectral density $g$:
        $f(\\Delta) = \\int g(\\xi) e^{2\\pi i \\xi\\cdot\\Delta} d\\xi$. The layer evaluates it
        with $R$ frequencies $\\xi_r$ drawn once from a proposal $p$,

        $$\\hat f(\\Delta) = \\frac1R \\sum_r a_r \\cos(2\\pi\\xi_r\\cdot\\Delta), \\qquad
        a_r = g(\\xi_r) / p(\\xi_r).$$

        This notebook trains a small FLTNet on the QM9 sample with a plain PyTorch loop and
        looks at $\\hat f$ (what the layer applies), its $R\\to\\infty$ limit $f$ (what the
        parameters mean), and the density $g$, before and after training. It ends with the
        error of linear attention against exact attention as the number of random features
        grows.
        """
    ),
    code(SETUP_PLT),
    code(
        """
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
        """
    ),
    md(
        """
        ## A small FLTNet

        The target is the HOMO-LUMO gap (eV), predicted by FLTNet's intensive head (an average
        of per-atom contributions) in units of the training set's mean and standard deviation,
        which `fit_statistics` sets. The network sees the geometry through two learned spectral
        functions of distance: the attention's RPE (an isotropic Gaussian mixture, 4 components
        per head) and, beside the attention, one spectral filter per channel on a learned radial
        basis, whose unnormalised sums $\\sum_j f_c(|r_i - r_j|)\\,u_j$ can count neighbours.
        In exact mode both use their closed forms, which depend on $|\\Delta|$ only.
        """
    ),
    code(
        """
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
        """
    ),
    md(
        """
        ## The learned $f(|\\Delta|)$ of each head

        `plot.rpe_profile` draws each head of the first FLT layer of a model (or `layer=k`).
        Solid: $\\hat f$ with the layer's own 16 frequencies, the RPE the layer applies (for an
        isotropic spectrum, averaged over the three coordinate axes). Dashed: the $R\\to\\infty$
        limit of the same parameters, here in closed form,
        $f(\\Delta) = \\sum_b w_b e^{-2\\pi^2\\sigma_b^2|\\Delta|^2}$.

        At initialisation every head has the same parameters (identical dashed lines); the
        solid lines differ because each head has its own draw of frequencies. Training
        separates the heads: weights $w_b$ and widths $\\sigma_b$ move. The gap between solid
        and dashed is the Monte Carlo error of 16 frequencies; it shrinks as $1/\\sqrt R$.
        """
    ),
    code(
        """
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True, layout="constrained")
        plot.rpe_profile(before, ax=axes[0])
        plot.rpe_profile(model, ax=axes[1])
        axes[0].set_title("layer 0, before training")
        axes[1].set_title(f"layer 0, after {steps} steps");
        """
    ),
    code(
        """
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True, layout="constrained")
        for layer, ax in enumerate(axes):
            plot.rpe_profile(model, layer=layer, ax=ax)
            ax.set_title(f"layer {layer}, after training")
        """
    ),
    md(
        """
        ## The spectral density $g$

        `plot.spectrum` shows $g$ along a ray (lines) and at the layer's frequencies (dots,
        at $g(\\xi_r) = a_r p(\\xi_r)$). Narrow components of $g$ are long-range parts of $f$.
        """
    ),
    code(
        """
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True, layout="constrained")
        plot.spectrum(before, ax=axes[0])
        plot.spectrum(model, ax=axes[1])
        axes[0].set_title("before training")
        axes[1].set_title("after training")
        spec = model.blocks[0].conv.attn.spectrum
        print("weights w_b per head:\\n", spec.weight.detach())
        print("widths sigma_b per head:\\n", spec.width.detach().squeeze(-1))
        """
    ),
    md(
        """
        ## Linear attention converges to exact attention

        The model was trained with exact attention. Linear attention approximates the softmax
        kernel with $m$ positive random features at $O(N)$ cost; with the same RPE, its output
        converges to the exact one as $m$ grows. `plot.feature_convergence` measures the output
        RMSE over several draws of the features, here on the queries, keys and values the
        trained layer sees on real molecules (captured with a forward pre-hook). The dotted
        line is the $m^{-1/2}$ rate of a Monte Carlo average; how far above it the error stays
        depends on the inputs, since the variance of positive random features grows quickly
        with the norms of queries and keys. This is why FLTNet defaults to exact attention on
        molecules of at most 29 atoms and keeps linear attention for large inputs.
        """
    ),
    code(
        """
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
        """
    ),
]


GRIDS = [
    md(
        """
        # Sequences and images: tokens on a grid

        FLT layers take coordinates of any dimension. Characters of a text sit at positions
        $0, 1, 2, \\dots$ on a line; patches of an image at (row, column) on a plane. This
        notebook trains a causal character language model on CPython's documentation (1D)
        and an image classifier on scikit-learn's 8×8 digits (2D), both with the **local RPE**:
        a mask concentrated on $\\lVert\\Delta\\rVert_\\infty \\le v$, learned through its
        spectrum (a smoothed box, whose Fourier transform is a product of sincs), with a
        learnable radius $v$ per head.
        """
    ),
    code(SETUP_PLT),
    md(
        """
        ## Flat batches on a grid

        `flt3d.datasets.grid` turns `[B, L, C]` sequences and `[B, C, H, W]` images into the
        flat `(x, pos, batch)` form the layers take; one grid step is one unit of `pos`.
        """
    ),
    code(
        """
        from flt3d.datasets.grid import flatten_image, flatten_sequence

        x, pos, batch = flatten_sequence(torch.zeros(2, 5, 8))
        print("sequence:", tuple(x.shape), pos[:5, 0].tolist(), batch.tolist())
        x, pos, batch = flatten_image(torch.zeros(1, 3, 2, 3))
        print("image:", tuple(x.shape), pos.tolist())
        """
    ),
    md(
        """
        ## 1D: a character language model on pydoc text

        `CharCorpus.from_pydoc()` is the English text of Python's built-in help topics, about
        465k characters, with no download. `SequenceModel` embeds characters, runs causal FLT
        blocks (token $t$ attends to $0..t$) and predicts the next character. The loss is
        reported in bits per character.
        """
    ),
    code(
        """
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
        """
    ),
    md(
        """
        The learned local RPE of the first layer. In causal attention only $\\Delta \\ge 0$
        (the query at or after the key) is used. Solid: $\\hat f$ with 16 frequencies, dashed:
        its limit, the smoothed box of radius $v$.
        """
    ),
    code(
        """
        radius = lm.blocks[0].conv.attn.spectrum.radius.detach()
        print("learned radius v per head (tokens):", [round(v, 2) for v in radius.tolist()])
        fig = plot.rpe_profile(lm, max_distance=12.0)
        """
    ),
    code(
        """
        @torch.no_grad()
        def sample(model, prompt, n=120, temperature=0.7):
            ids = corpus.vocab.encode(prompt).unsqueeze(0)
            for _ in range(n):
                logits = model(ids[:, -length:])[0, -1] / temperature
                ids = torch.cat([ids, torch.multinomial(logits.softmax(-1), 1).view(1, 1)], 1)
            return corpus.vocab.decode(ids[0])


        torch.manual_seed(1)
        print(sample(lm, "The "))
        """
    ),
    md(
        """
        ## 2D: digits as a grid of patches

        `ImageClassifier` cuts each 8×8 image into 2×2 patches, a 4×4 grid of tokens at
        integer (row, column) coordinates, and runs bidirectional FLT blocks with a 2D local
        RPE, then mean pooling. `length_scale=0.5` starts the box at a radius of two patches.
        """
    ),
    code(
        """
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
        """
    ),
    md(
        """
        A 2D spectrum is not isotropic, so `rpe_profile` draws slices along each axis (the
        other coordinate at 0). The full map $\\hat f(\\Delta_\\mathrm{row}, \\Delta_\\mathrm{col})$
        of each head comes straight from the layer's `rpe` method.
        """
    ),
    code(
        """
        fig = plot.rpe_profile(images, max_distance=4.0)
        """
    ),
    code(
        """
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
            ax.set_xlabel(r"$\\Delta_\\mathrm{col}$")
        axes[0].set_ylabel(r"$\\Delta_\\mathrm{row}$")
        fig.colorbar(im, ax=axes, shrink=0.8);
        """
    ),
]


POINTS = [
    md(
        """
        # Point clouds: shapes classified through a learned RPE

        A point cloud is a set of points in 3D, here sampled on the surface of a shape, each with
        the normal of the surface where it lies. `PointCloudClassifier` runs FLT blocks over the
        points of a cloud, pools them and classifies the shape. Geometry enters only through the
        attention's learned relative positional encoding (RPE) $f(r_i - r_j)$, here an isotropic
        Gaussian mixture (a function of the distance $|r_i - r_j|$, whatever the orientation),
        so the logits do not depend on where the cloud sits or on the order of its points.
        This notebook

        1. loads the ten classes of synthetic shapes that ship with flt3d (no download) and
           draws a few clouds,
        2. trains a small classifier for about half a minute on a CPU,
        3. colours clouds by the attention one point pays to the others,
        4. plots the RPE each head learned.

        Set `FLT3D_NOTEBOOK_FAST=1` to run everything with toy settings in seconds.
        """
    ),
    code(SETUP_PLT),
    md(
        """
        ## The shapes

        `shapes_sample_root()` unpacks the shipped sample into a folder in the layout of
        ModelNet, `<class>/{train,test}/*.off`: 40 training and 10 test meshes per class,
        randomly deformed and oriented primitives. `ModelNetFolder` samples `num_points` points
        on each surface (area-weighted), with their normals, puts every shape in the unit
        sphere and caches the result. The same class reads ModelNet10 or ModelNet40 once
        unzipped. `shape_augmentation()` turns each training cloud about the $z$ axis by a
        random angle, scales and jitters it, afresh at every access.
        """
    ),
    code(
        """
        from flt3d.datasets import ModelNetFolder, shape_augmentation, shapes_sample_root

        folder = shapes_sample_root()  # unpacked once into $FLT3D_DATA or ~/.cache/flt3d
        num_points = 128
        train = ModelNetFolder(
            folder, split="train", num_points=num_points, transform=shape_augmentation()
        )
        test = ModelNetFolder(folder, split="test", num_points=num_points)
        print(train, test, sep="\\n")
        print("classes:", ", ".join(train.classes))
        print(test[0])
        """
    ),
    code(
        """
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
        """
    ),
    md(
        """
        ## Train a small classifier

        The model reads the normals as the points' features (`in_channels=3`) and their
        coordinates only through the RPE. With 128 points per cloud, exact attention (all
        $128^2$ pairs, the same function that linear attention estimates with random features)
        is cheap, and it makes the attention weights below the ones the model applies. A plain
        PyTorch loop, AdamW with a one-cycle schedule, batches of 16 clouds.
        """
    ),
    code(
        """
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
        """
    ),
    md(
        """
        ## Where one point looks

        `model.attention_weights(normal, pos, layer=k)` returns the attention weights of block
        `k` on one cloud, `[P, P, heads]`, each row summing to one: `a[i, :, h]` is how point
        `i` spreads its attention over the cloud in head `h`. In exact mode these are the
        weights the model applies, $\\exp(q_i\\cdot k_j/\\sqrt d + \\hat f(r_i - r_j))$
        normalised over $j$. Below, the query is the highest point of each cloud (the star);
        brighter points get more of its attention. A head whose RPE is large at short
        distances and falls off (see the next plot) looks around the query; a head with a
        weak RPE reaches across the shape, to the points its content term
        $q_i \\cdot k_j$ picks: in the first layer a function of the two points' normals only.
        """
    ),
    code(
        """
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
        """
    ),
    md(
        """
        ## The learned RPE

        `plot.rpe_profile` draws each head's $\\hat f(|\\Delta|)$ with the layer's own 16
        frequencies (solid) and its $R \\to \\infty$ limit (dashed), over distances up to 2, the
        diameter of the unit sphere. A head whose $f$ falls off attends locally; a flat one
        leaves the choice to the content term.
        """
    ),
    code(
        """
        from flt3d import plot

        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True, layout="constrained")
        for k, ax in enumerate(axes):
            plot.rpe_profile(model, layer=k, max_distance=2.0, ax=ax)
            ax.set_title(f"layer {k}, after {steps} steps")
        """
    ),
    md(
        """
        ## Same weights, linear attention

        `set_attention` switches the model to linear attention, $O(P)$ per cloud with 64
        random features, the mode large clouds need. The parameters and the RPE stay the same;
        the kernel becomes an estimate, and a model trained in exact mode pays for that
        estimate's error. Training in linear mode (the model's default), with fresh random
        features at every step, teaches the model to live with it.
        """
    ),
    code(
        """
        from flt3d.nn import set_attention

        exact = test_accuracy(model)
        linear = test_accuracy(set_attention(model, "linear"))
        set_attention(model, "exact")
        print(f"test accuracy: exact {exact:.0%}, linear (64 random features) {linear:.0%}")
        """
    ),
]

NOTEBOOKS = {
    "01_quickstart_qm9": QUICKSTART,
    "02_flt_layers_in_your_pyg_model": PYG,
    "03_what_the_rpe_learned": RPE,
    "04_sequences_and_images": GRIDS,
    "05_point_clouds": POINTS,
}


def build(name: str, cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    """The notebook ``name`` with stable cell ids and no outputs."""
    made = []
    for i, (kind, source) in enumerate(cells):
        cell = new_markdown_cell(source) if kind == "markdown" else new_code_cell(source)
        cell["id"] = f"{name[:2]}-{i:02d}"
        made.append(cell)
    nb = new_notebook(cells=made)
    nb.metadata["kernelspec"] = {
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "name": "python3",
    }
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.validate(nb)
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check, write nothing")
    args = parser.parse_args(argv)
    stale = []
    for name, cells in NOTEBOOKS.items():
        path = os.path.join(HERE, f"{name}.ipynb")
        text = nbformat.writes(build(name, cells)) + "\n"
        current = open(path, encoding="utf-8").read() if os.path.exists(path) else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            with open(path, "w", encoding="utf-8") as file:
                file.write(text)
    if args.check and stale:
        print("out of date (run python notebooks/build.py):", *stale, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
