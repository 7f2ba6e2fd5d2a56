"""Checkpoint files: atomic writes, and reading them back with clear errors.

Lightning's own ``TorchCheckpointIO`` writes through an fsspec transaction whose temporary file
lives in the system temp folder; moving it into place is a rename only when that folder is on the
same file system as the checkpoint, and a copy (not atomic) otherwise. :class:`AtomicCheckpointIO`
writes the temporary file next to the checkpoint and renames it with ``os.replace``, so a reader
sees either the old file or the complete new one, even if the process is killed mid-write.

:class:`LastCheckpoint` writes a run's ``last.ckpt``: at the end of every epoch and, for runs that
should resume from the middle of an epoch, every few optimiser steps.

Every checkpoint written by a flt3d ``LightningModule`` holds Lightning's ``"hyper_parameters"``
with the full model configuration (every default pinned), so the module class's
``load_from_checkpoint`` rebuilds the very model, and an ``"flt3d"`` entry (see
:meth:`flt3d.training.base.TaskModule.on_save_checkpoint`): the task, the same model configuration
and module options, and the data settings, so ``flt3d eval`` and ``flt3d predict`` rebuild the
model and its data without the YAML file.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import Checkpoint

from flt3d.nn.checks import check_int

__all__ = [
    "CHECKPOINT_KEY",
    "AtomicCheckpointIO",
    "CheckpointError",
    "LastCheckpoint",
    "read_checkpoint",
]

CHECKPOINT_KEY = "flt3d"
"""Key of the flt3d entry in a checkpoint dictionary."""


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, or not written by flt3d."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` that writes a temporary file in the target folder, then renames it.

    Pass it to the trainer: ``Trainer(plugins=[AtomicCheckpointIO()])``.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp"
        )
        try:
            with os.fdopen(handle, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            if os.path.exists(temporary):
                os.remove(temporary)
            raise


class LastCheckpoint(Checkpoint):
    """Writes the run's latest state to ``path`` (``last.ckpt``).

    At the end of every epoch (after its validation, whether or not the monitored metric
    improved), and with ``every_n_train_steps`` also every that many optimiser steps, except on
    an epoch's last batch, whose epoch-end checkpoint follows. A resumed run continues from the
    latest of them (see :mod:`flt3d.training.resume`).

    Args:
        path: the checkpoint file.
        every_n_train_steps: optimiser steps between checkpoints within an epoch (default
            ``None``: at the ends of epochs only).
    """

    def __init__(self, path: str | os.PathLike, *, every_n_train_steps: int | None = None) -> None:
        check_int(every_n_train_steps, "every_n_train_steps", none="None")
        self.path = os.fspath(path)
        self.every_n_train_steps = every_n_train_steps

    def _save(self, trainer) -> None:
        if not trainer.fast_dev_run:
            trainer.save_checkpoint(self.path, weights_only=False)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        every = self.every_n_train_steps
        if every is None or trainer.global_step % every != 0:
            return
        if not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            self._save(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._save(trainer)  # also when a step or time limit ends the epoch early

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.path!r}, every_n_train_steps={self.every_n_train_steps})"
        )


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a flt3d checkpoint onto the CPU, with plain tensors and containers only.

    Args:
        path: the ``.ckpt`` file.

    Returns:
        The checkpoint dictionary; ``checkpoint["flt3d"]`` holds ``task``, ``model``,
        ``module`` and ``data``, and ``checkpoint["state_dict"]`` the weights.

    Raises:
        CheckpointError: naming ``path`` if it does not exist, is not a readable PyTorch file
            (truncated, corrupt, another format), or lacks the flt3d entry or the weights.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist")
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path!r} is not a file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load raises many types on damaged files
        reason = str(error).strip().split(". ")[0].splitlines()
        reason = f"{type(error).__name__}: {reason[0]}" if reason else type(error).__name__
        raise CheckpointError(
            f"cannot read checkpoint {path!r}: the file is corrupt, truncated or not a PyTorch "
            f"checkpoint ({reason})"
        ) from None
    entry = checkpoint.get(CHECKPOINT_KEY) if isinstance(checkpoint, dict) else None
    if not isinstance(entry, dict) or not {"task", "model", "module", "data"} <= entry.keys():
        raise CheckpointError(
            f"checkpoint {path!r} was not written by a flt3d training run (it lacks the "
            f"{CHECKPOINT_KEY!r} entry with the task, model and data settings)"
        )
    if not isinstance(checkpoint.get("state_dict"), dict):
        raise CheckpointError(f"checkpoint {path!r} holds no model weights ('state_dict')")
    return checkpoint
