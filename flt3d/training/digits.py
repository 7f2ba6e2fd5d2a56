"""Digit classification (scikit-learn's 8x8 digits): data module and ``LightningModule``."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from flt3d.datasets.digits import load_digits_splits
from flt3d.nn.checks import check_int
from flt3d.training.base import TaskModule
from flt3d.training.datamodule import ResumableDataModule

__all__ = ["DigitClassification", "DigitsDataModule"]


class DigitsDataModule(ResumableDataModule):
    """The 8x8 digits, split by :func:`~flt3d.datasets.digits.stratified_split` (seeded).

    Args:
        batch_size: images per batch (default ``64``).
        val_fraction: share of each class in validation (default ``0.1``).
        test_fraction: share of each class in test (default ``0.2``).
        seed: seed of the split (default ``0``).
        num_workers: loader worker processes (default ``0``).
    """

    def __init__(
        self,
        *,
        batch_size: int = 64,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.batch_size = check_int(batch_size, "data.batch_size")
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.seed = check_int(seed, "data.seed", minimum=0)
        self.num_workers = check_int(num_workers, "data.num_workers", minimum=0)
        self.splits: dict[str, Any] | None = None

    def settings(self) -> dict[str, Any]:
        """The constructor arguments, as stored in checkpoints."""
        return {
            "batch_size": self.batch_size,
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
            "seed": self.seed,
            "num_workers": self.num_workers,
        }

    def setup(self, stage: str | None = None) -> None:
        if self.splits is None:
            self.splits = load_digits_splits(
                val_fraction=self.val_fraction, test_fraction=self.test_fraction, seed=self.seed
            )

    def loader(self, split: str, *, shuffle: bool = False) -> DataLoader:
        """A loader over ``"train"``, ``"val"`` or ``"test"``."""
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        self.setup()
        dataset = self.splits[split]
        sampler = self.train_sampler(dataset, batch_size=self.batch_size) if shuffle else None
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            generator=None if sampler is None else sampler.generator,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test")


class DigitClassification(TaskModule):
    """Digit classification with :class:`~flt3d.models.image.ImageClassifier`.

    Logged metrics: ``{stage}/loss`` (cross-entropy) and ``{stage}/acc`` (accuracy in [0, 1]).

    Args:
        model: :class:`~flt3d.models.image.ImageClassifier` keyword arguments.
        label_smoothing: of the cross-entropy (default ``0.0``).
        optim: the ``optim`` section (see :func:`flt3d.training.optim.configure_optimizers`).
    """

    task = "digits"
    monitor = "val/acc"
    monitor_mode = "max"

    def __init__(
        self,
        model: dict[str, Any],
        *,
        label_smoothing: float = 0.0,
        optim: dict[str, Any] | None = None,
    ) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"module.label_smoothing must be in [0, 1), got {label_smoothing}")
        super().__init__(model, optim=optim)
        self.save_hyperparameters()
        self.label_smoothing = float(label_smoothing)

    def build_model(self, config: dict[str, Any]) -> nn.Module:
        from flt3d.models.image import ImageClassifier

        return ImageClassifier(**config)

    def module_options(self) -> dict[str, Any]:
        return {"label_smoothing": self.label_smoothing}

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images)

    def loss_and_metric(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, str, Tensor, int]:
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        acc = (logits.argmax(-1) == labels).float().mean()
        size = labels.shape[0]
        return loss, "acc", acc, size

    def report(self, metrics: dict[str, float], split: str) -> list[str]:
        """``"{split} accuracy: {percent} %"``."""
        return [f"{split} accuracy: {100 * metrics['acc']:.2f} %"]
