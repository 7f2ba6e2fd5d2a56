"""The checks of the ``trainer`` section that ``lightning.Trainer`` does not make itself."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightning.pytorch.profilers import Profiler

from flt3d.training.config import ConfigError

__all__ = ["check_trainer_options"]


def check_trainer_options(options: Mapping[str, Any]) -> None:
    """Check the ``trainer`` settings that ``lightning.Trainer`` takes unchecked and fails on
    later, in the middle of ``fit`` or ``test``.

    Raises:
        ConfigError: for a ``profiler`` that is neither a name, a ``Profiler`` nor null.
    """
    profiler = options.get("profiler")
    if profiler is not None and not isinstance(profiler, (str, Profiler)):
        raise ConfigError(
            "config key 'trainer.profiler' must be a profiler name ('simple', 'advanced', "
            f"'pytorch', 'xla') or null, got {profiler!r}"
        )
