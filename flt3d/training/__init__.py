"""Training with Lightning: tasks, run configurations, checkpoints, and the runs themselves.

Needs the ``train`` extra (``pip install 'flt3d[train]'``: Lightning, PyYAML, TensorBoard).

- :mod:`~flt3d.training.molecules`: QM9 data module and molecular property regression
  (MAE in meV for energies).
- :mod:`~flt3d.training.text`: character language modelling on pydoc text (bits per character).
- :mod:`~flt3d.training.digits`: 8x8 digit classification (accuracy).
- :mod:`~flt3d.training.pointcloud`: shape classification on a ModelNet-style folder of meshes
  (accuracy).
- what the tasks share: :mod:`~flt3d.training.base` (:class:`TaskModule`),
  :mod:`~flt3d.training.datamodule`, :mod:`~flt3d.training.classification` (cross-entropy and
  accuracy), :mod:`~flt3d.training.atomistic_loss` (errors standardised about the head's
  baseline).
- :mod:`~flt3d.training.config` and :mod:`~flt3d.training.tasks`: YAML run configurations,
  ``KEY=VALUE`` overrides, validation against the task's signatures.
- :mod:`~flt3d.training.limits`: the allowed range of every size setting and the parameter
  budget of a model, checked before anything is built.
- :mod:`~flt3d.training.optim`: AdamW, warm-up, cosine or plateau schedules.
- :mod:`~flt3d.training.checkpoint`: atomic checkpoint writes, checked reads.
- :mod:`~flt3d.training.figures`: :class:`RPEFigures`, the callback that draws what a run's
  first FLT layer learned when training ends.
- :mod:`~flt3d.training.run`: :func:`prepare_fit` (train, resume, data-parallel); with
  :mod:`~flt3d.training.evaluation` (:func:`evaluate`, :func:`load_module`), what the ``flt3d``
  command calls.

Example:
    >>> from flt3d.training import apply_overrides, load_config, validate_config
    >>> config = apply_overrides(load_config("qm9"), ["model.target=U0"])
    >>> validate_config(config)["model"]["target"]
    'U0'
"""

from flt3d.training.base import TaskModule
from flt3d.training.checkpoint import AtomicCheckpointIO, CheckpointError, read_checkpoint
from flt3d.training.config import (
    ConfigError,
    apply_overrides,
    load_config,
    parse_override,
    shipped_configs,
)
from flt3d.training.digits import DigitClassification, DigitsDataModule
from flt3d.training.evaluation import Evaluation, evaluate, load_module
from flt3d.training.limits import MAX_PARAMETERS, SIZE_LIMITS
from flt3d.training.molecules import MoleculeRegression, QM9DataModule, report_unit
from flt3d.training.optim import configure_optimizers, warmup_cosine
from flt3d.training.pointcloud import PointCloudClassification, PointCloudDataModule
from flt3d.training.run import Run, prepare_fit
from flt3d.training.tasks import TASKS, get_task, validate_config
from flt3d.training.text import CharLanguageModel, PydocDataModule

__all__ = [
    "MAX_PARAMETERS",
    "SIZE_LIMITS",
    "TASKS",
    "AtomicCheckpointIO",
    "CharLanguageModel",
    "CheckpointError",
    "ConfigError",
    "DigitClassification",
    "DigitsDataModule",
    "Evaluation",
    "MoleculeRegression",
    "PointCloudClassification",
    "PointCloudDataModule",
    "PydocDataModule",
    "QM9DataModule",
    "Run",
    "TaskModule",
    "apply_overrides",
    "configure_optimizers",
    "evaluate",
    "get_task",
    "load_config",
    "load_module",
    "parse_override",
    "prepare_fit",
    "read_checkpoint",
    "report_unit",
    "shipped_configs",
    "validate_config",
    "warmup_cosine",
]
