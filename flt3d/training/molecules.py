r"""Molecular property regression on QM9: a ``LightningDataModule`` and a ``LightningModule``.

The model (:class:`~flt3d.models.FLTNet`) predicts in the target's own unit. The loss is taken on
the standardised error :math:`(\hat y - y) / \sigma`, with :math:`\sigma` the std of the target
less the head's baseline (per-element references and mean) over the training molecules (see
:meth:`MoleculeRegression.fit_statistics`), so the loss starts near 1 for every target and
learning rates and gradient clipping carry over between targets. Errors are reported as mean
absolute errors in :func:`report_unit`: meV for energies (eV targets), the dataset unit
otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader

from flt3d.datasets.cache import default_data_root
from flt3d.datasets.molecules import check_elements
from flt3d.datasets.qm9 import QM9, TARGETS, UNITS, target_index
from flt3d.nn.checks import check_bool, check_int
from flt3d.training.atomistic_loss import (
    LOSSES,
    check_loss,
    head_baseline,
    spread,
    standardised_loss,
)
from flt3d.training.base import TaskModule
from flt3d.training.datamodule import SplitDataModule

__all__ = [
    "LOSSES",
    "MoleculeRegression",
    "QM9DataModule",
    "default_data_root",
    "report_unit",
]


def report_unit(target: str | int) -> tuple[str, str, float]:
    """Name, reporting unit and factor from the dataset unit for a QM9 target.

    Energies (every target in eV) are reported in meV; the others in their dataset unit.

    Example:
        >>> report_unit("u0"), report_unit("mu")
        (('U0', 'meV', 1000.0), ('mu', 'D', 1.0))
    """
    index = target_index(target)
    unit = UNITS[index]
    if unit == "eV":
        return TARGETS[index], "meV", 1000.0
    return TARGETS[index], unit, 1.0


class QM9DataModule(SplitDataModule):
    """QM9 with the standard seeded split, as PyG ``DataLoader`` s.

    Args:
        root: folder for the processed cache (default :func:`default_data_root` ``/qm9``).
        sample: use the 4,000-molecule sample shipped with flt3d (default ``True``);
            ``False`` reads the full set from ``qm9pack``.
        split_seed: seed of :func:`flt3d.datasets.standard_split` (default ``0``).
        batch_size: molecules per training batch (default ``32``).
        eval_batch_size: molecules per evaluation batch (default ``4 * batch_size``).
        num_workers: loader worker processes (default ``0``).

    Attributes:
        train_dataset, val_dataset, test_dataset: the splits, after :meth:`setup`.
    """

    setting_names = ("root", "sample", "split_seed", "batch_size", "eval_batch_size", "num_workers")

    def __init__(
        self,
        root: str | None = None,
        *,
        sample: bool = True,
        split_seed: int = 0,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.sample = check_bool(sample, "data.sample")
        self.set_loader_options(batch_size, eval_batch_size, num_workers, eval_factor=4)
        self.split_seed = check_int(split_seed, "data.split_seed", minimum=0)
        self.root = root
        self.dataset: QM9 | None = None
        self.train_dataset = self.val_dataset = self.test_dataset = None

    def _root(self) -> str:
        if self.root is not None:
            return os.path.expanduser(self.root)
        return os.path.join(default_data_root(), "qm9")

    def prepare_data(self) -> None:
        QM9(self._root(), sample=self.sample, log=False)

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is not None:
            return
        self.dataset = QM9(self._root(), sample=self.sample, log=False)
        train, val, test = self.dataset.standard_split(seed=self.split_seed)
        self.train_dataset = self.dataset[train]
        self.val_dataset = self.dataset[val]
        self.test_dataset = self.dataset[test]


class MoleculeRegression(TaskModule):
    r"""Regression of one QM9 property with :class:`~flt3d.models.FLTNet`.

    On ``fit``, the head's statistics and per-element references are fitted on the training
    split of the trainer's data module (:func:`flt3d.models.fit_statistics`) before the first
    step; a resumed run then restores them from the checkpoint.

    Logged metrics: ``{stage}/loss`` (standardised) and ``{stage}/mae`` (MAE in
    :func:`report_unit`, e.g. meV for ``U0``), for ``stage`` in ``train``, ``val``, ``test``.

    Args:
        model: :class:`~flt3d.models.FLTNet` keyword arguments (``target`` picks the column).
        loss: ``"l1"`` or ``"mse"`` on the standardised error (default ``"l1"``).
        optim: the ``optim`` section (see :func:`flt3d.training.optim.configure_optimizers`).
    """

    task = "qm9"
    monitor = "val/mae"
    monitor_mode = "min"

    def __init__(
        self,
        model: dict[str, Any],
        *,
        loss: str = "l1",
        optim: dict[str, Any] | None = None,
    ) -> None:
        check_loss(loss)
        super().__init__(model, optim=optim)
        self.save_hyperparameters()
        self.loss = loss
        self.target, self.unit, self.factor = report_unit(self.model.target)
        self.column = target_index(self.model.target)
        self.model_unit = UNITS[self.column]
        self.register_buffer("loss_scale", torch.ones((), dtype=torch.get_default_dtype()))

    def module_options(self) -> dict[str, Any]:
        return {"loss": self.loss}

    @property
    def elements(self) -> list[int]:
        """Atomic numbers the model accepts."""
        return list(self.model.elements)

    def report(self, metrics: dict[str, float], split: str) -> list[str]:
        """``"{split} MAE {target}: {value} {unit}"``, e.g. ``"test MAE U0: 45.2 meV"``."""
        return [f"{split} MAE {self.target}: {metrics['mae']:.4g} {self.unit}"]

    def fit_training_data(self, datamodule: QM9DataModule) -> None:
        self.fit_statistics(datamodule.train_dataset)

    @torch.no_grad()
    def fit_statistics(self, dataset) -> None:
        """Fit the head's statistics and references, then :attr:`loss_scale`, on ``dataset``.

        ``loss_scale`` is the std over the molecules of ``dataset`` of the target less the
        head's baseline (its output when the per-atom network outputs zero: the references
        and mean, reduced per molecule), so the loss starts near 1 for every target.
        """
        from flt3d.models.fltnet import fit_statistics

        loader = DataLoader(dataset, batch_size=4096, shuffle=False)
        self.model.set_statistics(*fit_statistics(self.model, loader))
        residuals = []
        for batch in loader:
            baseline = head_baseline(self.model.head, batch)
            residuals.append(batch.y[:, self.column].to(baseline) - baseline)
        self.loss_scale.fill_(spread(torch.cat(residuals)))

    def forward(
        self, z: Tensor, pos: Tensor, batch: Tensor | None = None, num_graphs: int | None = None
    ) -> Tensor:
        return self.model(z, pos, batch, num_graphs=num_graphs)

    def loss_and_metric(self, batch: Batch) -> tuple[Tensor, str, Tensor, int]:
        pred = self(batch.z, batch.pos, batch.batch, batch.num_graphs)[:, 0]
        y = batch.y[:, self.column].to(pred.dtype)
        error = (pred - y) / self.loss_scale
        loss = standardised_loss(error, self.loss)
        mae = (pred - y).detach().abs().mean() * self.factor
        size = batch.num_graphs
        return loss, "mae", mae, size

    @torch.no_grad()
    def predict_molecules(self, molecules: Sequence[Data], *, batch_size: int = 64) -> Tensor:
        """Predictions for molecules in the target's dataset unit (e.g. eV), ``[len]``.

        Raises:
            ValueError: naming the molecule and element if an element is outside the model's.
        """
        check_elements(molecules, self.elements)
        out = []
        with self.evaluating():
            for start in range(0, len(molecules), batch_size):
                batch = Batch.from_data_list(
                    [Data(z=m.z, pos=m.pos) for m in molecules[start : start + batch_size]]
                ).to(self.device)
                out.append(self(batch.z, batch.pos, batch.batch, batch.num_graphs)[:, 0].cpu())
        return torch.cat(out) if out else torch.zeros(0)
