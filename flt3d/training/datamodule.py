"""The loaders every flt3d data module with a train / val / test split shares."""

from __future__ import annotations

import lightning as L
from torch_geometric.loader import DataLoader

__all__ = ["SplitDataModule"]


class SplitDataModule(L.LightningDataModule):
    """A ``LightningDataModule`` whose :meth:`setup` sets ``train_dataset``, ``val_dataset``
    and ``test_dataset``; loaders are PyG ``DataLoader`` s with ``batch_size`` (training),
    ``eval_batch_size`` and ``num_workers``, which subclasses set."""

    batch_size: int
    eval_batch_size: int
    num_workers: int

    def split(self, name: str):
        """The dataset of split ``"train"``, ``"val"`` or ``"test"`` (after :meth:`setup`)."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {name!r}")
        self.setup()
        return getattr(self, f"{name}_dataset")

    def _loader(self, dataset, *, shuffle: bool, batch_size: int) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_dataset, shuffle=True, batch_size=self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset, shuffle=False, batch_size=self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset, shuffle=False, batch_size=self.eval_batch_size)

    def loader(self, split: str) -> DataLoader:
        """An unshuffled evaluation loader over any split."""
        return self._loader(self.split(split), shuffle=False, batch_size=self.eval_batch_size)
