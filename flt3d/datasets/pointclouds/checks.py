"""The argument checks of the point-cloud readers, and the optional import of ``trimesh``.

Shared by :func:`~flt3d.datasets.read_point_cloud` and :class:`~flt3d.datasets.ModelNetFolder`:
``num_points`` and ``seed`` checks, the one-line form of a parser's error, and the import of
``trimesh`` that names the ``pointclouds`` extra when it is missing.
"""

from __future__ import annotations

import operator
from types import ModuleType
from typing import Any

POINTCLOUDS_EXTRA = "pip install 'flt3d[pointclouds]'"


def _import_trimesh() -> ModuleType:
    try:
        import trimesh
    except ImportError as error:
        raise ImportError(
            f"reading mesh files needs the optional package 'trimesh'; install it with "
            f"{POINTCLOUDS_EXTRA}"
        ) from error
    return trimesh


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be a positive integer, got {value!r}") from None
    if number < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return number


def _seed(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"seed must be a non-negative integer, got {value!r}")
    return value
