"""Training runs: a run configuration into a trained, resumable run folder.

A run writes into one output folder::

    OUTPUT/
      config.yaml              the validated configuration of the latest (re)start
      checkpoints/best.ckpt    lowest validation error so far (highest accuracy for digits)
      checkpoints/last.ckpt    the latest state: weights, optimiser, schedulers, loop counters,
                               random generators, position in the data
      logs/version_k/          CSV metrics of (re)start k
      tensorboard/version_k/   TensorBoard events of (re)start k
      results.yaml             validation and test metrics of best.ckpt, at the end

``prepare_fit(config, output, resume=True).run()`` continues from ``checkpoints/last.ckpt``
through Lightning's ``ckpt_path``: the step count, optimiser and scheduler states, callbacks
(best score, weight average, time budget) and the epoch counter all carry on, and so do the
random generators, the data order and the position in the epoch (see
:mod:`flt3d.training.resume`). ``last.ckpt`` is written at the end of each epoch and, with
``checkpoint_every_n_steps: N`` in the configuration, every ``N`` optimiser steps: a run killed
at any point and resumed then ends with the weights and metrics of the same run uninterrupted
(with step and epoch limits; a ``trainer.max_time`` budget depends on the machine's speed).

Checkpoints are written with :class:`~flt3d.training.checkpoint.AtomicCheckpointIO` (temporary
file in the checkpoint folder, then ``os.replace``): a run killed while saving leaves the previous
``last.ckpt`` intact, and resuming removes the temporary file it left.

Several GPUs or nodes: set ``trainer.devices``, ``trainer.num_nodes`` and
``trainer.strategy: ddp``; Lightning launches the processes and the data modules shard the
training data over them (:class:`~flt3d.training.resume.ResumableSampler`, a
``DistributedSampler``).

The evaluation of checkpoints (:func:`evaluate`, :func:`load_module`, :class:`Evaluation`) lives
in :mod:`flt3d.training.evaluation`; it is imported here too, where it has always been.
"""

from __future__ import annotations

import copy
import glob
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import EMAWeightAveraging, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from flt3d.training.base import TaskModule
from flt3d.training.checkpoint import AtomicCheckpointIO, LastCheckpoint, read_checkpoint
from flt3d.training.config import ConfigError
from flt3d.training.evaluation import Evaluation, evaluate, load_module
from flt3d.training.figures import RPEFigures
from flt3d.training.optim import check_options
from flt3d.training.tasks import Task, get_task, validate_config
from flt3d.training.trainer_options import check_trainer_options

__all__ = [
    "CONFIG_FILE",
    "RESULTS_FILE",
    "Evaluation",
    "Run",
    "build_module",
    "check_trainer_options",
    "evaluate",
    "load_module",
    "prepare_fit",
]

CONFIG_FILE = "config.yaml"
RESULTS_FILE = "results.yaml"
CHECKPOINT_DIR = "checkpoints"

# Data loading runs in the main process by default (num_workers=0), on purpose: the molecules
# are small and in memory. Lightning would warn about it on every loader.
warnings.filterwarnings("ignore", ".*does not have many workers.*")


def checkpoint_paths(output: str | os.PathLike) -> tuple[str, str]:
    """``(best, last)`` checkpoint paths of a run folder."""
    folder = os.path.join(os.fspath(output), CHECKPOINT_DIR)
    return os.path.join(folder, "best.ckpt"), os.path.join(folder, "last.ckpt")


def build_module(task: Task, config: Mapping[str, Any], datamodule: L.LightningDataModule):
    """The task's ``LightningModule`` from a validated configuration and its data module."""
    model = dict(config["model"])
    provided = getattr(datamodule, "model_options", None)
    if provided is not None:
        model.update(provided())
    return task.module()(model, optim=dict(config["optim"]), **config["module"])


@dataclass
class Run:
    """A prepared training run: call :meth:`run` to train, then evaluate the best checkpoint.

    Built by :func:`prepare_fit`, which does every check (configuration, output folder,
    checkpoint to resume) before any training starts.
    """

    config: dict[str, Any]
    output: str
    task: Task
    module: TaskModule
    datamodule: L.LightningDataModule
    trainer: L.Trainer
    resume_from: str | None = None
    evaluations: list[Evaluation] = field(default_factory=list)

    @property
    def best_checkpoint(self) -> str:
        return checkpoint_paths(self.output)[0]

    @property
    def last_checkpoint(self) -> str:
        return checkpoint_paths(self.output)[1]

    def run(self, *, evaluate_best: bool = True) -> list[Evaluation]:
        """Train; then, on the main process, evaluate ``best.ckpt`` on val and test.

        The evaluation runs on one device and follows ``trainer.limit_val_batches`` and
        ``trainer.limit_test_batches`` of the configuration (all batches by default).

        Returns:
            The evaluations (empty on other processes, or if ``evaluate_best`` is false or no
            best checkpoint was written), also written to ``results.yaml``.
        """
        with warnings.catch_warnings():
            if self.resume_from is not None:  # the folder holds the run being resumed
                warnings.filterwarnings("ignore", ".*exists and is not empty.*")
                # the data modules restore the position in the epoch themselves
                warnings.filterwarnings("ignore", ".*your dataloader is not resumable.*")
            self.trainer.fit(self.module, datamodule=self.datamodule, ckpt_path=self.resume_from)
        if not (evaluate_best and self.trainer.is_global_zero):
            return []
        path = self.best_checkpoint if os.path.isfile(self.best_checkpoint) else None
        if path is None:
            return []
        trainer = self.config["trainer"]
        options = {k: trainer[k] for k in ("accelerator", "precision") if k in trainer}
        limits = {
            "val": trainer.get("limit_val_batches"),
            "test": trainer.get("limit_test_batches"),
        }
        self.evaluations = []
        for split in ("val", "test"):
            limit = {} if limits[split] is None else {"limit_test_batches": limits[split]}
            self.evaluations.append(evaluate(path, split, trainer={**options, **limit}, quiet=True))
        results = {
            "checkpoint": path,
            "global_step": int(self.trainer.global_step),
            **{e.split: e.metrics for e in self.evaluations},
        }
        with open(os.path.join(self.output, RESULTS_FILE), "w", encoding="utf-8") as file:
            yaml.safe_dump(results, file, sort_keys=False)
        return self.evaluations


@rank_zero_only
def _write_config(config: Mapping[str, Any], output: str) -> None:
    os.makedirs(output, exist_ok=True)
    path = os.path.join(output, CONFIG_FILE)
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as file:
        yaml.safe_dump(dict(config), file, sort_keys=False)
    os.replace(temporary, path)


def prepare_fit(
    config: Mapping[str, Any],
    output: str | os.PathLike,
    *,
    resume: bool = False,
    callbacks: Sequence[L.Callback] = (),
) -> Run:
    """Validate a configuration and build the model, data, trainer and callbacks of a run.

    Args:
        config: the run configuration (see :mod:`flt3d.training.config`).
        output: the run folder (see the module docstring).
        resume: continue from ``output/checkpoints/last.ckpt``.
        callbacks: extra Lightning callbacks.

    Returns:
        The :class:`Run`.

    Raises:
        ConfigError: for an unknown key or task, a fresh run into a folder that holds one, or
            ``resume`` without a last checkpoint.
        ValueError: for an option value the model, data or optimiser rejects.
        CheckpointError: if the checkpoint to resume from is unreadable.
    """
    config = validate_config(config)
    output = os.fspath(output)
    best, last = checkpoint_paths(output)
    resume_from = None
    if resume:
        if not os.path.isfile(last):
            raise ConfigError(
                f"cannot resume: {output!r} holds no checkpoint {CHECKPOINT_DIR}/last.ckpt"
            )
        entry = read_checkpoint(last)["flt3d"]
        if entry["task"] != config["task"]:
            raise ConfigError(
                f"cannot resume: {last!r} is a {entry['task']!r} run, the config a "
                f"{config['task']!r} one"
            )
        resume_from = last
        if rank_zero_only.rank == 0:  # temporary files of a write that a kill interrupted
            pattern = os.path.join(glob.escape(os.path.dirname(last)), ".*.ckpt.*.tmp")
            for path in glob.glob(pattern):
                os.remove(path)
    elif os.path.isfile(last) and rank_zero_only.rank == 0:
        raise ConfigError(
            f"{output!r} already holds a run ({CHECKPOINT_DIR}/last.ckpt); pass --resume to "
            "continue it, or choose another output folder"
        )

    task = get_task(config["task"])
    if config["num_threads"] is not None:
        torch.set_num_threads(config["num_threads"])
    L.seed_everything(config["seed"], workers=True, verbose=False)
    check_options(config["optim"])
    check_trainer_options(config["trainer"])
    datamodule = task.datamodule()(**config["data"])
    module = build_module(task, config, datamodule)
    check = getattr(module, "check_data", None)
    if check is not None:  # data the model cannot take, reported before training starts
        check(datamodule, "all")
    module.run_config = copy.deepcopy(config)

    checkpoint = ModelCheckpoint(
        dirpath=os.path.dirname(best),
        filename="best",
        monitor=module.monitor,
        mode=module.monitor_mode,
        save_top_k=1,
        save_last=False,
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )
    every = config.get("checkpoint_every_n_steps")
    all_callbacks: list[L.Callback] = [
        checkpoint,
        LastCheckpoint(last, every_n_train_steps=every),
        *callbacks,
    ]
    ema_decay = config["optim"].get("ema_decay")
    if ema_decay is not None:
        if not 0.0 < ema_decay < 1.0:
            raise ValueError(f"optim.ema_decay must be in (0, 1) or null, got {ema_decay}")
        all_callbacks.append(EMAWeightAveraging(decay=ema_decay))
    all_callbacks.append(RPEFigures(output))  # last: the weights fit ends with
    loggers = [
        CSVLogger(output, name="logs"),
        TensorBoardLogger(output, name="tensorboard", default_hp_metric=False),
    ]
    trainer = L.Trainer(
        default_root_dir=output,
        callbacks=all_callbacks,
        logger=loggers,
        plugins=[AtomicCheckpointIO()],
        **{**config["trainer"], **module.trainer_required},
    )
    _write_config(config, output)
    return Run(config, output, task, module, datamodule, trainer, resume_from)
