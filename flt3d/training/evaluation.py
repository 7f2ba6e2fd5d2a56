"""Evaluation of a trained checkpoint: the module rebuilt from the file alone, and its metrics.

:func:`load_module` rebuilds a task's ``LightningModule`` from a checkpoint alone, with no YAML
file, by ``load_from_checkpoint`` (the task named in the ``"flt3d"`` entry, see
:mod:`flt3d.training.checkpoint`); :func:`evaluate` runs it on one split of
the data it was trained on, in one process on one device, and returns an :class:`Evaluation`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import lightning as L

from flt3d.training.base import TaskModule
from flt3d.training.checkpoint import CheckpointError, read_checkpoint
from flt3d.training.config import ConfigError, check_keys
from flt3d.training.limits import check_sizes
from flt3d.training.tasks import Task, get_task, section_keys
from flt3d.training.trainer_options import check_trainer_options

__all__ = ["Evaluation", "evaluate", "load_module"]


@dataclass
class Evaluation:
    """Metrics of one checkpoint on one split, with printable lines."""

    split: str
    metrics: dict[str, float]
    lines: list[str]


def load_module(path: str | os.PathLike) -> tuple[Task, TaskModule, dict[str, Any]]:
    """Rebuild a trained module from a checkpoint alone.

    Returns:
        ``(task, module, entry)`` with the module in eval mode on the CPU and ``entry`` the
        checkpoint's flt3d entry (``model``, ``module``, ``data``, ``config``).

    Raises:
        CheckpointError: if the file is missing, unreadable, or its weights do not fit the
            model it describes.
    """
    checkpoint = read_checkpoint(path)
    entry = checkpoint["flt3d"]
    hyper_parameters = checkpoint.get("hyper_parameters")
    try:
        task = get_task(entry["task"])
        if isinstance(hyper_parameters, dict) and hyper_parameters.get("model") == entry["model"]:
            # Lightning's own route: the module class called with the "hyper_parameters"
            # (the full model config), then its weights
            module = task.module().load_from_checkpoint(path, map_location="cpu", weights_only=True)
        else:
            # files whose hyper-parameters are the arguments as given (written before they
            # held the full config), or that hold none: the flt3d entry's full config
            module = task.module()(entry["model"], **entry["module"])
            module.load_state_dict(checkpoint["state_dict"])
    except (ConfigError, ValueError, TypeError, RuntimeError, KeyError) as error:
        raise CheckpointError(
            f"checkpoint {os.fspath(path)!r} does not rebuild into a model: {error}"
        ) from None
    module.eval()
    return task, module, entry


def evaluate(
    checkpoint: str | os.PathLike,
    split: str = "test",
    *,
    data: Mapping[str, Any] | None = None,
    trainer: Mapping[str, Any] | None = None,
    quiet: bool = False,
) -> Evaluation:
    """Metrics of a checkpoint on one split of the data it was trained on.

    Args:
        checkpoint: the ``.ckpt`` file.
        split: ``"train"``, ``"val"``, ``"test"`` (default) or ``"all"`` (data modules that
            have it: every structure of a file).
        data: data settings to change (e.g. ``{"sample": False}`` to evaluate on full QM9).
        trainer: ``lightning.Trainer`` options (e.g. ``{"accelerator": "cpu"}``).
        quiet: hide the progress bar and Lightning's messages.

    Returns:
        The :class:`Evaluation`, whose ``lines`` name each metric with its unit.

    Raises:
        CheckpointError: for a missing or unreadable checkpoint.
        ConfigError: for unknown data or trainer keys, data sizes beyond their range (see
            :mod:`flt3d.training.limits`), trainer settings that ``lightning.Trainer`` rejects,
            that ask for more than one device or process, or that evaluate nothing.
    """
    if split not in ("train", "val", "test", "all"):
        raise ConfigError(f"split must be 'train', 'val', 'test' or 'all', got {split!r}")
    task, module, entry = load_module(checkpoint)
    keys = section_keys(task)
    check_keys(data or {}, keys["data"], "data")
    check_keys(trainer or {}, keys["trainer"], "trainer")
    data = {**entry["data"], **(data or {})}
    check_sizes({"data": data})
    datamodule = task.datamodule()(**data)
    check = getattr(module, "check_data", None)
    if check is not None:  # e.g. elements the model lacks, named with their file and structure
        check(datamodule, split)
    options = {"devices": 1, "enable_progress_bar": not quiet, "enable_model_summary": False}
    options.update(trainer or {})
    options.update(module.trainer_required)
    with _quiet_lightning(quiet):
        evaluator = _evaluator(options)
        results = evaluator.test(module, dataloaders=datamodule.loader(split), verbose=False)
    metrics = {key.split("/", 1)[-1]: float(value) for key, value in (results or [{}])[0].items()}
    try:
        lines = module.report(metrics, split)
    except KeyError:  # no batch ran (limit_test_batches=0) or nothing was logged (barebones)
        settings = ", ".join(f"trainer.{key}={value!r}" for key, value in (trainer or {}).items())
        raise ConfigError(
            f"evaluating {os.fspath(checkpoint)!r} on the {split!r} split gave no metrics; the "
            f"trainer settings ({settings or 'none given'}) run no batch or log nothing"
        ) from None
    return Evaluation(split, metrics, lines)


@contextlib.contextmanager
def _quiet_lightning(quiet: bool) -> Iterator[None]:
    """Hide Lightning's informational messages (devices found, ...) while evaluating."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    if quiet:
        for logger in loggers:
            logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _evaluator(options: Mapping[str, Any]) -> L.Trainer:
    """The ``lightning.Trainer`` of :func:`evaluate`: one process on one device."""
    check_trainer_options(options)
    try:
        evaluator = L.Trainer(logger=False, enable_checkpointing=False, **options)
    except Exception as error:  # Lightning rejects a setting with its own exception types
        raise ConfigError(
            f"the trainer settings cannot be used: {type(error).__name__}: {error}"
        ) from None
    if evaluator.world_size != 1:  # more would each print metrics on replicated samples
        raise ConfigError(
            f"evaluation runs in one process on one device; the trainer settings "
            f"(devices={options.get('devices')!r}, num_nodes={options.get('num_nodes', 1)!r}) "
            f"ask for {evaluator.world_size}"
        )
    return evaluator
