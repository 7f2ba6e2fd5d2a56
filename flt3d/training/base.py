"""TaskModule: the part every flt3d ``LightningModule`` shares (model, optimiser, checkpoints).

Besides the weights, its checkpoints hold what an exact resume needs and Lightning does not save
(see :mod:`flt3d.training.resume`): the random number generators' states, put back when the
resumed run starts training, and, in the middle of an epoch, the running sums of that epoch's
training metrics, folded into the resumed epoch's first step.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import lightning as L
from lightning.pytorch.callbacks import Timer
from torch import Tensor, nn

from flt3d import __version__
from flt3d.training.checkpoint import CHECKPOINT_KEY
from flt3d.training.limits import check_model_size, check_sizes
from flt3d.training.optim import configure_optimizers
from flt3d.training.resume import (
    add_epoch_sums,
    all_processes,
    epoch_position,
    epoch_sums,
    rng_states,
    set_rng_states,
)
from flt3d.training.tasks import TASKS

__all__ = ["EPOCH_SUMS_KEY", "RNG_KEY", "TaskModule"]

RNG_KEY = "rng_states"
"""Checkpoint key of the generators' states, one entry per process
(:func:`~flt3d.training.resume.all_processes` of :func:`~flt3d.training.resume.rng_states`)."""

EPOCH_SUMS_KEY = "epoch_metric_sums"
"""Checkpoint key of the running sums of an interrupted epoch's training metrics
(:func:`~flt3d.training.resume.epoch_sums`)."""


class TaskModule(L.LightningModule):
    """Base ``LightningModule``: builds the model from its config and writes the flt3d entry.

    Subclasses set :attr:`task`, :attr:`monitor` and :attr:`monitor_mode`, implement the
    steps, :meth:`report` and :meth:`module_options`, and call ``save_hyperparameters()`` in
    their ``__init__``. Those that take statistics from the training data implement
    :meth:`fit_training_data`; :meth:`build_model` and :meth:`forward` default to the task's
    model.

    Args:
        model: keyword arguments of the model (its ``config``).
        optim: the ``optim`` section (see :func:`flt3d.training.optim.configure_optimizers`);
            default: its defaults.

    Attributes:
        model: the ``torch.nn.Module`` built by :meth:`build_model`.
        run_config: the full run configuration, stored in checkpoints when set (by
            :func:`flt3d.training.run.prepare_fit`).
    """

    task: ClassVar[str] = ""
    monitor: ClassVar[str] = "val/loss"
    monitor_mode: ClassVar[str] = "min"
    #: ``lightning.Trainer`` options the task needs whatever the config says (forces need
    #: autograd in validation and test: ``inference_mode=False``)
    trainer_required: ClassVar[dict[str, Any]] = {}

    def __init__(self, model: Mapping[str, Any], *, optim: Mapping[str, Any] | None = None):
        super().__init__()
        if not isinstance(model, Mapping):
            raise ValueError(f"model must be a mapping of model options, got {model!r}")
        self.optim = dict(optim or {})
        # a model far too big would exhaust the memory while it is built, not raise
        check_sizes({"model": model})
        if self.task in TASKS:
            check_model_size(TASKS[self.task].model(), model)
        self.model = self.build_model(dict(model))
        self.run_config: dict[str, Any] | None = None
        self._time_fraction = 0.0
        self._resumed_rng: list[dict[str, Any]] | None = None
        self._resumed_sums: dict[str, Any] | None = None

    def build_model(self, config: dict[str, Any]) -> nn.Module:
        """The model from its keyword arguments: the task's model class (see
        :data:`~flt3d.training.tasks.TASKS`) called with them."""
        if self.task not in TASKS:
            raise NotImplementedError(f"{type(self).__name__} must set task or build_model()")
        return TASKS[self.task].model()(**config)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The model's output on the arguments it takes."""
        return self.model(*args, **kwargs)

    def loss_and_metric(self, batch: Any) -> tuple[Tensor, str, Tensor, int]:
        """``(loss, metric name, metric value, batch size)`` of one batch."""
        raise NotImplementedError(f"{type(self).__name__} must define loss_and_metric()")

    def _step(self, batch: Any, stage: str) -> Tensor:
        loss, name, value, size = self.loss_and_metric(batch)
        on_step = stage == "train"
        self.log(
            f"{stage}/loss", loss, batch_size=size, on_step=on_step, on_epoch=True, sync_dist=True
        )
        self.log(
            f"{stage}/{name}",
            value,
            batch_size=size,
            on_step=on_step,
            on_epoch=True,
            prog_bar=stage != "test",
            sync_dist=True,
        )
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        loss = self._step(batch, "train")
        if self._resumed_sums is not None:  # the epoch's metrics exist once logged
            add_epoch_sums(self.trainer, self._resumed_sums)
            self._resumed_sums = None
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, "test")

    def report(self, metrics: Mapping[str, float], split: str) -> list[str]:
        """Printable lines of the metrics of one split (keys without the stage prefix)."""
        return [f"{split} {name}: {value:.4g}" for name, value in metrics.items()]

    def module_options(self) -> dict[str, Any]:
        """Options of this module besides ``model`` and ``optim``, as stored in checkpoints."""
        return {}

    def setup(self, stage: str) -> None:
        if stage != "fit":
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and getattr(datamodule, "train_dataset", None) is not None:
            self.fit_training_data(datamodule)

    def fit_training_data(self, datamodule: L.LightningDataModule) -> None:
        """Fit what the model takes from the training split (statistics, references) before
        the first step of ``fit``; a resumed run then restores it from the checkpoint. The
        default fits nothing."""

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        """Eval mode inside the block, the former mode after it (for predictions)."""
        was_training = self.training
        self.eval()
        try:
            yield
        finally:
            self.train(was_training)

    def configure_optimizers(self):
        total = None
        if self._trainer is not None:
            total = self.trainer.estimated_stepping_batches
        return configure_optimizers(
            self,
            total_steps=total,
            monitor=self.monitor,
            monitor_mode=self.monitor_mode,
            time_fraction=lambda: self._time_fraction,
            **self.optim,
        )

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if not self.optim.get("anneal_to_max_time"):
            return
        timer = next((c for c in self.trainer.callbacks if isinstance(c, Timer)), None)
        remaining = None if timer is None else timer.time_remaining()
        if remaining is None:
            return
        elapsed = timer.time_elapsed()
        fraction = elapsed / max(elapsed + remaining, 1e-9)
        # rank 0's clock for every process, so that data-parallel replicas keep one rate
        self._time_fraction = float(self.trainer.strategy.broadcast(fraction, src=0))

    def on_train_epoch_start(self) -> None:
        # datasets with seeded per-epoch content (random text windows) redraw it here, in step
        # with the epoch counter, so a resumed run sees the same windows it would have seen
        dataset = getattr(self.trainer.train_dataloader, "dataset", None)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(self.current_epoch)

    def on_train_start(self) -> None:
        saved, self._resumed_rng = self._resumed_rng, None
        if saved and self.trainer.ckpt_path is not None:  # one entry per process
            rank = self.trainer.global_rank
            set_rng_states(saved[rank] if rank < len(saved) else saved[0])

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._resumed_rng = checkpoint.get(RNG_KEY)
        self._resumed_sums = checkpoint.get(EPOCH_SUMS_KEY)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # called on every process at once: the generators' states are gathered and the metric
        # sums reduced over them
        trainer = self._trainer
        position = epoch_position(trainer)
        if position is not None:
            checkpoint[RNG_KEY] = all_processes(trainer, rng_states())
            if position[1] > 0:  # in the middle of an epoch
                checkpoint[EPOCH_SUMS_KEY] = epoch_sums(trainer)
        data: dict[str, Any] = {}
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer else None
        if datamodule is not None and hasattr(datamodule, "settings"):
            data = datamodule.settings()
        # Lightning's "hyper_parameters" get the constructor's arguments with every default
        # pinned (the model's full config), so load_from_checkpoint rebuilds this very model
        # whatever later versions change; the flt3d entry adds the task, data and run settings
        arguments = self.init_arguments()
        checkpoint[self.CHECKPOINT_HYPER_PARAMS_KEY] = copy.deepcopy(arguments)
        checkpoint[CHECKPOINT_KEY] = {
            "version": __version__,
            "task": self.task,
            "model": arguments.pop("model"),
            "module": arguments,
            "data": data,
            "config": copy.deepcopy(self.run_config),
        }

    def init_arguments(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this module: ``model`` (the model's full config),
        :meth:`module_options` and ``optim``."""
        return {
            "model": copy.deepcopy(self.model.config),
            **self.module_options(),
            "optim": dict(self.optim),
        }
