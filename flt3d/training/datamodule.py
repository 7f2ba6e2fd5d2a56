"""What every flt3d data module shares: loaders with a resumable training order and plain
evaluation, checked loader options, and the settings that checkpoints store."""

from __future__ import annotations

import os
from typing import Any, ClassVar

import lightning as L
import torch.utils.data
from torch_geometric.loader import DataLoader

from flt3d.nn.checks import check_int
from flt3d.training.resume import ResumableSampler, epoch_position

__all__ = ["ResumableDataModule", "SplitDataModule"]


class ResumableDataModule(L.LightningDataModule):
    """A ``LightningDataModule`` whose training loader can resume in the middle of an epoch.

    :meth:`train_sampler` gives the training loader a
    :class:`~flt3d.training.resume.ResumableSampler`: epoch ``e`` visits the permutation seeded
    by ``seed + e``, where the seed is the run's (``lightning.seed_everything`` keeps it in
    ``PL_GLOBAL_SEED``, which Lightning's own ``DistributedSampler`` reads too), sharded over the
    processes of a data-parallel run. The checkpoint holds the epoch and the batches of it
    already trained on (:meth:`state_dict`); a resumed run's first training loader starts there.

    :meth:`settings` returns the attributes named in :attr:`setting_names`, the constructor
    arguments that checkpoints store to build the data module again.
    """

    #: constructor arguments, each kept in the attribute of its name, in signature order
    setting_names: ClassVar[tuple[str, ...]] = ()
    batch_size: int
    num_workers: int
    _resume_at: tuple[int, int] | None = None

    def settings(self) -> dict[str, Any]:
        """The constructor arguments, as stored in checkpoints."""
        return {name: getattr(self, name) for name in self.setting_names}

    def train_sampler(self, dataset, *, batch_size: int) -> ResumableSampler:
        """The sampler of a training loader over ``dataset`` with ``batch_size``.

        A dataset with ``set_epoch`` (seeded per-epoch content) is set to the sampler's epoch,
        which a run resumed in the middle of an epoch would not otherwise do.
        """
        trainer = self.trainer
        replicas, rank = (1, 0) if trainer is None else (trainer.world_size, trainer.global_rank)
        sampler = ResumableSampler(
            dataset,
            batch_size=batch_size,
            seed=int(os.environ.get("PL_GLOBAL_SEED", 0)),
            num_replicas=replicas,
            rank=rank,
        )
        resume, self._resume_at = self._resume_at, None
        if resume is not None:
            sampler.resume(*resume)
        elif trainer is not None:
            sampler.set_epoch(trainer.current_epoch)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(sampler.epoch)
        return sampler

    def tensor_loader(
        self, dataset, *, shuffle: bool, persistent_workers: bool = True
    ) -> torch.utils.data.DataLoader:
        """A ``torch`` loader of ``batch_size`` items over ``dataset``, in the resumable
        training order (:meth:`train_sampler`) when ``shuffle``, else in order.

        ``persistent_workers`` keeps the worker processes, if any, between epochs.
        """
        sampler = self.train_sampler(dataset, batch_size=self.batch_size) if shuffle else None
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            generator=None if sampler is None else sampler.generator,
            num_workers=self.num_workers,
            persistent_workers=persistent_workers and self.num_workers > 0,
        )

    def state_dict(self) -> dict[str, Any]:
        """``{"epoch", "batches"}``: where the training data stands (empty outside fitting).

        A finished epoch is stored as the start of the next one.
        """
        position = epoch_position(self.trainer)
        return {} if position is None else {"epoch": position[0], "batches": position[1]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "epoch" in state_dict and "batches" in state_dict:
            self._resume_at = (int(state_dict["epoch"]), int(state_dict["batches"]))


class SplitDataModule(ResumableDataModule):
    """A ``LightningDataModule`` whose :meth:`setup` sets ``train_dataset``, ``val_dataset``
    and ``test_dataset``; loaders are PyG ``DataLoader`` s with ``batch_size`` (training,
    resumable: see :class:`ResumableDataModule`), ``eval_batch_size`` and ``num_workers``,
    which subclasses set."""

    batch_size: int
    eval_batch_size: int
    num_workers: int

    def set_loader_options(
        self, batch_size: int, eval_batch_size: int | None, num_workers: int, *, eval_factor: int
    ) -> None:
        """Check and set the loader options; ``eval_batch_size`` defaults to
        ``eval_factor * batch_size``.

        Raises:
            ValueError: naming the ``data.*`` key of a value that is not a positive integer
                (``num_workers``: non-negative).
        """
        self.batch_size = check_int(batch_size, "data.batch_size")
        self.num_workers = check_int(num_workers, "data.num_workers", minimum=0)
        if eval_batch_size is not None:
            check_int(eval_batch_size, "data.eval_batch_size")
        self.eval_batch_size = eval_batch_size or eval_factor * batch_size

    def split(self, name: str):
        """The dataset of split ``"train"``, ``"val"`` or ``"test"`` (after :meth:`setup`)."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {name!r}")
        self.setup()
        return getattr(self, f"{name}_dataset")

    def _loader(self, dataset, *, batch_size: int, sampler=None) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=False,
            sampler=sampler,
            generator=None if sampler is None else sampler.generator,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        sampler = self.train_sampler(self.train_dataset, batch_size=self.batch_size)
        return self._loader(self.train_dataset, batch_size=self.batch_size, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_dataset, batch_size=self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_dataset, batch_size=self.eval_batch_size)

    def loader(self, split: str) -> DataLoader:
        """An unshuffled evaluation loader over any split."""
        return self._loader(self.split(split), batch_size=self.eval_batch_size)
