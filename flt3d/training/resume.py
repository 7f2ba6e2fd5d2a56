"""What an exact resume needs besides Lightning's own checkpoint.

Lightning restores the weights, the optimiser and scheduler states, the callbacks and the loop
counters. Three more things decide what a resumed run computes, and this module keeps them:

- **The data order.** :class:`ResumableSampler` draws each epoch's permutation from the seed and
  the epoch alone (as ``DistributedSampler`` does) and can start part-way through it, so a run
  resumed in the middle of an epoch trains on exactly the batches the uninterrupted run would
  have. Lightning 2.x on its own restarts the epoch from its first batch.
- **The random number generators.** The models draw fresh random features at every training
  step from torch's global generator, and augmentations draw from it (and Python's) as batches
  are loaded. :func:`rng_states` and :func:`set_rng_states` save and put back the torch (CPU and
  CUDA), NumPy and Python states; :func:`all_processes` gathers every process's own, which part
  ways when the draws depend on the data (dropout on a batch's atoms). Lightning loads each
  batch of a loader with a length just before its step, so the states at a checkpoint are those
  the next batch is loaded with, and the loader draws its own seeds from the sampler's
  generator, not from the global one.
- **The running means of the interrupted epoch.** Metrics logged with ``on_epoch=True`` are
  averaged over the epoch; :func:`epoch_sums` and :func:`add_epoch_sums` carry the sums of the
  batches before the checkpoint into the resumed run, summed over the processes.

:class:`~flt3d.training.base.TaskModule` and
:class:`~flt3d.training.datamodule.ResumableDataModule` use them; with
``checkpoint_every_n_steps`` in the run configuration (see :mod:`flt3d.training.config`),
``last.ckpt`` is written often enough to resume in the middle of an epoch.

Exact with the data loaded in the training process (``num_workers=0``, the default); loader
workers that draw random numbers start their streams afresh in a resumed epoch.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sized
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DistributedSampler

from flt3d.nn.checks import check_int

__all__ = [
    "ResumableSampler",
    "add_epoch_sums",
    "all_processes",
    "epoch_position",
    "epoch_sums",
    "rng_states",
    "set_rng_states",
]


class ResumableSampler(DistributedSampler):
    r"""A seeded, sharded permutation per epoch that can start after the first batches.

    Epoch :math:`e` visits the permutation of ``torch.randperm`` seeded by ``seed + e`` (the
    dataset order without ``shuffle``), padded to a multiple of ``num_replicas`` and sharded
    over the processes exactly like ``torch.utils.data.DistributedSampler``; one process is
    ``num_replicas=1``. After :meth:`resume`, the iteration of that epoch skips the indices of
    the batches already trained on; :meth:`set_epoch` to another epoch starts from the top.

    Args:
        dataset: the dataset (only its length is used).
        batch_size: samples per batch of the loader that uses the sampler.
        shuffle: permute each epoch (default ``True``).
        seed: seed of the permutations (default ``0``).
        num_replicas: processes that share the data (default ``1``).
        rank: this process (default ``0``).

    Attributes:
        generator: a ``torch.Generator`` seeded by ``seed + epoch``, for the loader's own
            draws (the workers' base seed), which then leave torch's global generator alone.

    Example:
        >>> sampler = ResumableSampler(range(10), batch_size=3, seed=1)
        >>> full = list(sampler)
        >>> sampler.resume(0, batches=2)
        >>> list(sampler) == full[6:]
        True
        >>> sampler.set_epoch(1)
        >>> len(list(sampler))
        10
    """

    def __init__(
        self,
        dataset: Sized,
        *,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        check_int(batch_size, "batch_size")
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.batch_size = batch_size
        self.start = 0
        self.generator = torch.Generator()
        self.generator.manual_seed(self.seed + self.epoch)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.start = 0
        super().set_epoch(epoch)
        self.generator.manual_seed(self.seed + self.epoch)

    def resume(self, epoch: int, batches: int) -> None:
        """Make the next iteration that of ``epoch``, less its first ``batches`` batches."""
        check_int(batches, "batches", minimum=0)
        self.set_epoch(epoch)
        self.start = batches

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.start * self.batch_size :])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({len(self.dataset)}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, seed={self.seed}, num_replicas={self.num_replicas}, "
            f"rank={self.rank})"
        )


def epoch_position(trainer) -> tuple[int, int] | None:
    """``(epoch, batches)``: the epoch in progress and its batches trained on so far.

    A finished epoch counts as the start of the next one, ``(epoch + 1, 0)``. ``None`` when
    the trainer is not fitting.
    """
    from lightning.pytorch.trainer.states import TrainerFn

    if trainer is None or trainer.state.fn != TrainerFn.FITTING:
        return None
    epoch = int(trainer.current_epoch)
    batches = int(trainer.fit_loop.epoch_loop.batch_progress.current.ready)
    if batches >= trainer.num_training_batches:
        return epoch + 1, 0
    return epoch, batches


def rng_states() -> dict[str, Any]:
    """The states of torch's (CPU and, once in use, CUDA), NumPy's and Python's generators.

    Plain tensors, tuples and numbers only, so that ``torch.load(..., weights_only=True)``
    reads them back.

    Example:
        >>> states = rng_states()
        >>> first = torch.rand(3)
        >>> set_rng_states(states)
        >>> torch.equal(torch.rand(3), first)
        True
    """
    kind, keys, position, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def all_processes(trainer, value: Any) -> list[Any]:
    """``value`` of every process of the run, by global rank (``[value]`` for one process).

    Call it on every process at once.
    """
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if trainer is None or trainer.world_size == 1 or not distributed:
        return [value]
    gathered: list[Any] = [None] * trainer.world_size
    torch.distributed.all_gather_object(gathered, value)
    return gathered


def set_rng_states(states: Mapping[str, Any]) -> None:
    """Put back generator states from :func:`rng_states` (those it holds)."""
    if "torch" in states:
        torch.set_rng_state(states["torch"])
    if "numpy" in states:
        kind, keys, position, has_gauss, cached = states["numpy"]
        keys = np.asarray(keys, dtype=np.int64).astype(np.uint32)
        np.random.set_state((kind, keys, int(position), int(has_gauss), float(cached)))
    if "python" in states:
        version, internal, gauss = states["python"]
        random.setstate((version, tuple(internal), gauss))
    if "cuda" in states and torch.cuda.is_available():
        cuda = list(states["cuda"])
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def _epoch_metrics(trainer) -> dict[str, Any]:
    # Lightning keeps the running values of self.log(..., on_epoch=True) from training_step in
    # the training loop's result collection, one torchmetrics Metric per key, and does not
    # checkpoint them.
    results = getattr(trainer.fit_loop.epoch_loop, "_results", None) or {}
    return {
        key: metric
        for key, metric in results.items()
        if getattr(metric, "is_tensor", False) and metric.meta.on_epoch
    }


def epoch_sums(trainer) -> dict[str, dict[str, Tensor]]:
    """The running sums of the training metrics logged per epoch, over all processes.

    Call it on every process at once (it all-reduces when the trainer runs several).

    Returns:
        ``{key: {"value": ..., "cumulated_batch_size": ...}}`` (the batch size for means only),
        on the CPU.
    """
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    sums = {}
    for key, metric in _epoch_metrics(trainer).items():
        meta = metric.meta
        entry = {"value": metric.value.detach().clone()}
        if meta.is_mean_reduction:
            entry["cumulated_batch_size"] = metric.cumulated_batch_size.detach().clone()
        if distributed and trainer.world_size > 1:
            for name, value in entry.items():
                op = torch.distributed.ReduceOp.SUM
                if name == "value" and meta.is_max_reduction:
                    op = torch.distributed.ReduceOp.MAX
                elif name == "value" and meta.is_min_reduction:
                    op = torch.distributed.ReduceOp.MIN
                torch.distributed.all_reduce(value, op=op)
        sums[key] = {name: value.cpu() for name, value in entry.items()}
    return sums


def add_epoch_sums(trainer, sums: Mapping[str, Mapping[str, Tensor]]) -> None:
    """Fold sums from :func:`epoch_sums` into this epoch's running training metrics.

    The totals go to the main process only, since the processes' sums are added at the end
    of the epoch. Call it once each key has been logged in the resumed epoch.
    """
    if trainer.global_rank != 0:
        return
    for key, metric in _epoch_metrics(trainer).items():
        saved = sums.get(key)
        if saved is None:
            continue
        value = saved["value"].to(metric.value)
        meta = metric.meta
        if meta.is_max_reduction:
            metric.value = torch.maximum(metric.value, value)
        elif meta.is_min_reduction:
            metric.value = torch.minimum(metric.value, value)
        else:
            metric.value = metric.value + value
        if meta.is_mean_reduction and "cumulated_batch_size" in saved:
            size = saved["cumulated_batch_size"].to(metric.cumulated_batch_size)
            metric.cumulated_batch_size = metric.cumulated_batch_size + size
