"""Training on one's own structures: energies and forces from any file ASE reads.

``flt3d train --data PATH`` runs the ``atoms`` task: :class:`AtomsDataModule` reads the file
(:class:`flt3d.datasets.AtomsDataset`, cached), splits it with a seed and fits per-element
reference energies on the training part; :class:`EnergyForcesRegression` trains FLTNet's
energy with forces :math:`F = -\\partial E/\\partial r` (autograd) in the loss when the file
has forces, and reports energy MAE (meV) and force MAE (meV/Å).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader

from flt3d.datasets.atoms import EMT_COPPER_SAMPLE_PATH, AtomsDataset
from flt3d.datasets.molecules import check_elements
from flt3d.nn.checks import check_int
from flt3d.training.atomistic_loss import (
    check_loss,
    head_baseline,
    scale_or_one,
    spread,
    standardised_loss,
)
from flt3d.training.base import TaskModule
from flt3d.training.datamodule import SplitDataModule

__all__ = ["AtomsDataModule", "EnergyForcesRegression"]


def _cell_of(data: Data) -> dict[str, Tensor]:
    return {"cell": data.cell, "pbc": data.pbc} if "pbc" in data and "cell" in data else {}


def _periodic_inputs(batch: Batch) -> dict[str, Tensor]:
    # cells of a batch when any structure is periodic (open ones keep pbc False)
    if "pbc" in batch and bool(batch.pbc.any()):
        return {"cell": batch.cell.to(batch.pos.dtype), "pbc": batch.pbc}
    return {}


class AtomsDataModule(SplitDataModule):
    """Structures of one file (extxyz, ASE ``.db``, ``.traj``, ...) with a seeded split.

    Args:
        path: the file (default: the EMT copper clusters shipped with flt3d,
            ``datasets/emt_copper.md``).
        root: folder of the processed cache (default ``$FLT3D_DATA/atoms``).
        energy_key: key of the energy in ``atoms.info`` / the calculator (default ``"energy"``).
        forces_key: key of the forces in ``atoms.arrays`` / the calculator (default
            ``"forces"``); trained on when the file has them.
        split_seed: seed of the split (default ``0``).
        val_fraction, test_fraction: shares of the structures held out (default ``0.1``).
        batch_size: structures per training batch (default ``16``).
        eval_batch_size: structures per evaluation batch (default ``4 * batch_size``).
        num_workers: loader worker processes (default ``0``).
    """

    setting_names = (
        "path", "root", "energy_key", "forces_key", "split_seed", "val_fraction",
        "test_fraction", "batch_size", "eval_batch_size", "num_workers",
    )  # fmt: skip

    def __init__(
        self,
        path: str | None = None,
        *,
        root: str | None = None,
        energy_key: str = "energy",
        forces_key: str = "forces",
        split_seed: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.set_loader_options(batch_size, eval_batch_size, num_workers, eval_factor=4)
        self.split_seed = check_int(split_seed, "data.split_seed", minimum=0)
        self.path = EMT_COPPER_SAMPLE_PATH if path is None else os.fspath(path)
        self.root = root
        self.energy_key = energy_key
        self.forces_key = forces_key
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.dataset: AtomsDataset | None = None
        self.train_dataset = self.val_dataset = self.test_dataset = None

    def _dataset(self) -> AtomsDataset:
        if self.dataset is None:
            self.dataset = AtomsDataset(
                self.path,
                None if self.root is None else os.path.expanduser(self.root),
                energy_key=self.energy_key,
                forces_key=self.forces_key,
            )
        return self.dataset

    def model_options(self) -> dict[str, Any]:
        """Model options the data decides: the elements of the file, and the energy head."""
        return {"elements": list(self._dataset().elements), "target": "energy"}

    def prepare_data(self) -> None:
        self._dataset()

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is not None:
            return
        dataset = self._dataset()
        train, val, test = dataset.split(
            val_fraction=self.val_fraction, test_fraction=self.test_fraction, seed=self.split_seed
        )
        self.train_index = train
        self.train_dataset, self.val_dataset = dataset[train], dataset[val]
        self.test_dataset = dataset[test]

    def split(self, name: str):
        """The dataset of split ``"train"``, ``"val"``, ``"test"`` or ``"all"``."""
        if name == "all":
            return self._dataset()
        if name not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val', 'test' or 'all', got {name!r}")
        return super().split(name)


class EnergyForcesRegression(TaskModule):
    r"""FLTNet energies, with forces by autograd, on structures of one's own.

    The loss is ``energy_weight`` times the energy error per structure over the training
    energies' residual std (after the fitted per-element references), plus ``forces_weight``
    times the force component error over the training forces' std, both squared (``"mse"``)
    or absolute (``"l1"``). Files without forces train on the energy alone. On ``fit`` the
    per-element references and the per-atom residual mean and std are fitted on the training
    split before the first step.

    Logged metrics: ``{stage}/loss``, ``{stage}/mae`` (energy, meV) and ``{stage}/force_mae``
    (meV/Å) for ``stage`` in ``train``, ``val``, ``test``.

    Args:
        model: :class:`~flt3d.models.FLTNet` keyword arguments (target ``"energy"``).
        loss: ``"mse"`` (default) or ``"l1"``.
        energy_weight: weight of the energy term (default ``1.0``).
        forces_weight: weight of the force term (default ``1.0``).
        optim: the ``optim`` section.
    """

    task = "atoms"
    monitor = "val/loss"
    monitor_mode = "min"
    trainer_required: ClassVar[dict[str, Any]] = {"inference_mode": False}

    def __init__(
        self,
        model: dict[str, Any],
        *,
        loss: str = "mse",
        energy_weight: float = 1.0,
        forces_weight: float = 1.0,
        optim: dict[str, Any] | None = None,
    ) -> None:
        check_loss(loss)
        for name, value in (("energy_weight", energy_weight), ("forces_weight", forces_weight)):
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"module.{name} must be a non-negative number, got {value!r}")
        super().__init__(model, optim=optim)
        self.save_hyperparameters()
        self.loss = loss
        self.energy_weight = float(energy_weight)
        self.forces_weight = float(forces_weight)
        self.register_buffer("energy_scale", torch.ones((), dtype=torch.get_default_dtype()))
        self.register_buffer("forces_scale", torch.ones((), dtype=torch.get_default_dtype()))

    def build_model(self, config: dict[str, Any]) -> nn.Module:
        config.setdefault("target", "energy")
        return super().build_model(config)

    def module_options(self) -> dict[str, Any]:
        return {
            "loss": self.loss,
            "energy_weight": self.energy_weight,
            "forces_weight": self.forces_weight,
        }

    @property
    def elements(self) -> list[int]:
        """Atomic numbers the model accepts."""
        return list(self.model.elements)

    def report(self, metrics: dict[str, float], split: str) -> list[str]:
        """``"{split} MAE energy: ... meV"`` and, with forces, ``"{split} MAE forces: ... meV/Å"``."""
        lines = [f"{split} MAE energy: {metrics['mae']:.4g} meV"]
        if "force_mae" in metrics:
            lines.append(f"{split} MAE forces: {metrics['force_mae']:.4g} meV/Å")
        return lines

    def fit_training_data(self, datamodule: AtomsDataModule) -> None:
        self.fit_statistics(datamodule.dataset, datamodule.train_index)

    @torch.no_grad()
    def fit_statistics(self, dataset: AtomsDataset, train: Tensor) -> None:
        """Per-element references and the per-atom residual's mean and std from the training
        structures ``train`` of ``dataset``, then the loss scales."""
        reference = dataset.fit_atomref(train)
        self.model.set_statistics(reference.mean, reference.std, reference.energies)
        residuals, forces = [], []
        for batch in DataLoader(dataset[train], batch_size=4096, shuffle=False):
            baseline = head_baseline(self.model.head, batch).double()
            residuals.append(batch.energy.reshape(-1).double() - baseline)
            if "forces" in batch:
                forces.append(batch.forces.reshape(-1))
        self.energy_scale.fill_(spread(torch.cat(residuals)))
        if forces:
            rms = float(torch.cat(forces).double().pow(2).mean().sqrt())
            self.forces_scale.fill_(scale_or_one(rms))

    def _step(self, batch: Batch, stage: str) -> Tensor:
        has_forces = "forces" in batch
        cells = _periodic_inputs(batch)
        if has_forces:
            energy, forces = self.model.energy_and_forces(
                batch.z, batch.pos, batch.batch, create_graph=self.training,
                num_graphs=batch.num_graphs, **cells,
            )  # fmt: skip
        else:
            energy = self.model(batch.z, batch.pos, batch.batch, num_graphs=batch.num_graphs, **cells)
        energy = energy[:, 0]
        target = batch.energy.reshape(-1).to(energy.dtype)
        standardised = (energy - target) / self.energy_scale
        loss = self.energy_weight * standardised_loss(standardised, self.loss)
        size = batch.num_graphs
        on_step = stage == "train"
        log = dict(batch_size=size, on_step=on_step, on_epoch=True, sync_dist=True)
        if has_forces:
            error = forces - batch.forces.to(forces.dtype)
            standardised = error / self.forces_scale
            loss = loss + self.forces_weight * standardised_loss(standardised, self.loss)
            self.log(f"{stage}/force_mae", error.detach().abs().mean() * 1000.0, **log)
        self.log(f"{stage}/loss", loss.detach(), **log)
        mae = (energy - target).detach().abs().mean() * 1000.0
        self.log(f"{stage}/mae", mae, prog_bar=stage != "test", **log)
        return loss

    def check_data(self, datamodule: AtomsDataModule, split: str) -> None:
        """Raise a ``ValueError`` naming the file and structure if ``split`` of
        ``datamodule`` holds an element the model lacks, or a periodic structure for a model
        that sees beyond its cutoff.
        """
        dataset = datamodule.split(split)
        check_elements(dataset, self.elements, source=datamodule.path)
        periodic = [int(d.idx) for d in dataset if bool(d.pbc.any())]
        if periodic and not self.model.local:
            raise ValueError(
                f"{datamodule.path!r}, structure {periodic[0]}: periodic cells need a local "
                "FLTNet (--set model.far_attention=false, no long-range parts): attention "
                "beyond the cutoff over one cell's atoms is not a periodic function"
            )

    def predict_structures(
        self, structures: Sequence[Data], *, batch_size: int = 16
    ) -> list[tuple[float, Tensor]]:
        """``(energy in eV, forces [N, 3] in eV/Å)`` for each structure."""
        check_elements(structures, self.elements, source="structures")
        out = []
        with self.evaluating():
            for start in range(0, len(structures), batch_size):
                chunk = structures[start : start + batch_size]
                batch = Batch.from_data_list(
                    [Data(z=s.z, pos=s.pos, **_cell_of(s)) for s in chunk]
                ).to(self.device)
                energy, forces = self.model.energy_and_forces(
                    batch.z, batch.pos, batch.batch, **_periodic_inputs(batch)
                )
                for k in range(batch.num_graphs):
                    out.append((float(energy[k, 0]), forces[batch.batch == k].cpu()))
        return out
