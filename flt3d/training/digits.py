"""Digit classification (scikit-learn's 8x8 digits): data module and ``LightningModule``."""

from __future__ import annotations

from typing import Any

from torch import Tensor
from torch.utils.data import DataLoader

from flt3d.datasets.digits import load_digits_splits
from flt3d.nn.checks import check_int
from flt3d.training.classification import ClassificationModule
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

    setting_names = ("batch_size", "val_fraction", "test_fraction", "seed", "num_workers")

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
        return self.tensor_loader(self.splits[split], shuffle=shuffle)

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test")


class DigitClassification(ClassificationModule):
    """Digit classification with :class:`~flt3d.models.image.ImageClassifier`.

    Logged metrics: ``{stage}/loss`` (cross-entropy) and ``{stage}/acc`` (accuracy in [0, 1]).

    Args:
        model: :class:`~flt3d.models.image.ImageClassifier` keyword arguments.
        label_smoothing: of the cross-entropy (default ``0.0``).
        optim: the ``optim`` section (see :func:`flt3d.training.optim.configure_optimizers`).
    """

    task = "digits"

    def loss_and_metric(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, str, Tensor, int]:
        images, labels = batch
        return self.classification_loss(self(images), labels)
