"""The training tasks and the validation of run configurations against them.

Each section of a run configuration is the keyword arguments of one callable, so its allowed keys
are that callable's parameters: ``model`` → the task's model class, ``data`` → its
``LightningDataModule``, ``module`` → its ``LightningModule`` (besides ``model`` and ``optim``),
``optim`` → :func:`flt3d.training.optim.configure_optimizers`, ``trainer`` →
``lightning.Trainer`` (less what the run sets itself). Defaults stay in one place, the
signatures, and a misspelt key is an error rather than a silent default. Values are checked
against the parameters' annotations too, with jsonargparse (see
:mod:`flt3d.training.config_types`).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import lightning as L

from flt3d.nn.checks import check_int
from flt3d.training.config import SECTIONS, ConfigError, check_keys
from flt3d.training.config_types import check_types
from flt3d.training.limits import check_model_size, check_sizes
from flt3d.training.optim import configure_optimizers

__all__ = ["TASKS", "TRAINER_MANAGED", "Task", "get_task", "validate_config"]

TRAINER_MANAGED = frozenset(
    {"callbacks", "logger", "default_root_dir", "plugins", "enable_checkpointing"}
)
"""``Trainer`` arguments that :func:`flt3d.training.run.prepare_fit` sets itself."""

_OPTIM_MANAGED = frozenset({"module", "total_steps", "monitor", "monitor_mode", "time_fraction"})


@dataclass(frozen=True)
class Task:
    """A training task: what to build from each section of a run configuration.

    Attributes:
        name: the ``task`` value.
        module: returns the ``LightningModule`` class.
        datamodule: returns the ``LightningDataModule`` class.
        model: returns the model class.
        data_provided: model arguments that the data module provides (``vocab_size``).
    """

    name: str
    module: Callable[[], type]
    datamodule: Callable[[], type]
    model: Callable[[], type]
    data_provided: frozenset[str] = field(default_factory=frozenset)


def _molecule_module():
    from flt3d.training.molecules import MoleculeRegression

    return MoleculeRegression


def _qm9_datamodule():
    from flt3d.training.molecules import QM9DataModule

    return QM9DataModule


def _fltnet():
    from flt3d.models.fltnet import FLTNet

    return FLTNet


def _atoms_module():
    from flt3d.training.atoms import EnergyForcesRegression

    return EnergyForcesRegression


def _atoms_datamodule():
    from flt3d.training.atoms import AtomsDataModule

    return AtomsDataModule


def _lm_module():
    from flt3d.training.text import CharLanguageModel

    return CharLanguageModel


def _pydoc_datamodule():
    from flt3d.training.text import PydocDataModule

    return PydocDataModule


def _sequence_model():
    from flt3d.models.sequence import SequenceModel

    return SequenceModel


def _digits_module():
    from flt3d.training.digits import DigitClassification

    return DigitClassification


def _digits_datamodule():
    from flt3d.training.digits import DigitsDataModule

    return DigitsDataModule


def _image_classifier():
    from flt3d.models.image import ImageClassifier

    return ImageClassifier


def _pointcloud_module():
    from flt3d.training.pointcloud import PointCloudClassification

    return PointCloudClassification


def _pointcloud_datamodule():
    from flt3d.training.pointcloud import PointCloudDataModule

    return PointCloudDataModule


def _pointcloud_classifier():
    from flt3d.models.pointcloud import PointCloudClassifier

    return PointCloudClassifier


TASKS: dict[str, Task] = {
    "qm9": Task("qm9", _molecule_module, _qm9_datamodule, _fltnet),
    "pydoc_lm": Task(
        "pydoc_lm",
        _lm_module,
        _pydoc_datamodule,
        _sequence_model,
        data_provided=frozenset({"vocab_size"}),
    ),
    "digits": Task("digits", _digits_module, _digits_datamodule, _image_classifier),
    "atoms": Task(
        "atoms",
        _atoms_module,
        _atoms_datamodule,
        _fltnet,
        data_provided=frozenset({"elements", "target"}),
    ),
    "pointcloud": Task(
        "pointcloud",
        _pointcloud_module,
        _pointcloud_datamodule,
        _pointcloud_classifier,
        data_provided=frozenset({"num_classes", "classes"}),
    ),
}
"""Tasks by name."""


def get_task(name: Any) -> Task:
    """The task called ``name``.

    Raises:
        ConfigError: listing the tasks if there is none of that name.
    """
    if not isinstance(name, str) or name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}")
    return TASKS[name]


def _parameters(callable_: Callable, exclude: frozenset[str] | set[str] = frozenset()) -> list[str]:
    signature = inspect.signature(callable_)
    return [
        name
        for name, parameter in signature.parameters.items()
        if name != "self"
        and name not in exclude
        and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    ]


def _section_callables(task: Task) -> dict[str, tuple[Callable, frozenset[str]]]:
    """What each mapping section of ``task`` configures, and the parameters it may not set."""
    return {
        "model": (task.model(), task.data_provided),
        "data": (task.datamodule(), frozenset()),
        "module": (task.module(), frozenset({"model", "optim"})),
        "optim": (configure_optimizers, _OPTIM_MANAGED),
        "trainer": (L.Trainer, TRAINER_MANAGED),
    }


def section_keys(task: Task) -> dict[str, list[str]]:
    """The allowed keys of each mapping section for ``task``."""
    return {
        section: _parameters(callable_, exclude)
        for section, (callable_, exclude) in _section_callables(task).items()
    }


def validate_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Check a run configuration and fill in missing sections.

    Args:
        config: the configuration (see :mod:`flt3d.training.config`).

    Returns:
        A copy with every section present (``task`` defaults to ``"qm9"``, ``seed`` to ``0``,
        ``num_threads`` to ``None``, mapping sections to ``{}``; ``checkpoint_every_n_steps``
        stays absent unless given). Values stay as given.

    Raises:
        ConfigError: naming the first unknown key or unknown task, a section that is not a
            mapping, a size beyond its range, a value not of its parameter's type (see
            :mod:`flt3d.training.config_types`) or a model beyond the parameter budget (see
            :mod:`flt3d.training.limits`).

    Example:
        >>> validate_config({"task": "qm9", "model": {"hidden_chanels": 8}})
        Traceback (most recent call last):
            ...
        flt3d.training.config.ConfigError: unknown config key 'model.hidden_chanels'; did you mean 'model.hidden_channels'?
        >>> validate_config({"task": "qm9", "model": {"heads": "eight"}})
        Traceback (most recent call last):
            ...
        flt3d.training.config.ConfigError: config key 'model.heads' must be int, got 'eight'
    """
    check_keys(config, SECTIONS, "")
    config = copy.deepcopy(dict(config))
    task = get_task(config.setdefault("task", "qm9"))
    check_int(config.setdefault("seed", 0), "config key 'seed'", minimum=0, error=ConfigError)
    for key in ("num_threads", "checkpoint_every_n_steps"):
        check_int(config.get(key), f"config key {key!r}", none="null", error=ConfigError)
    config.setdefault("num_threads", None)
    callables = _section_callables(task)
    for section, (callable_, exclude) in callables.items():
        value = config.get(section)
        if value is None:
            value = config[section] = {}
        for name in task.data_provided if section == "model" else ():
            if name in value:
                raise ConfigError(
                    f"config key 'model.{name}' is set by the {task.name} data, not the config"
                )
        check_keys(value, _parameters(callable_, exclude), section)
    check_sizes(config)  # before the types: 1e9 layers is beyond the range, not only a float
    for section, (callable_, exclude) in callables.items():
        check_types(config[section], callable_, section, exclude)
    check_model_size(task.model(), config["model"])
    return config
