"""The optional import of ``trimesh`` shared by the point-cloud readers.

Shared by :func:`~flt3d.datasets.read_point_cloud` and :class:`~flt3d.datasets.ModelNetFolder`:
the import of ``trimesh`` that names the ``pointclouds`` extra when it is missing. Their
argument checks are :func:`flt3d.nn.checks.check_int`, and the one-line form of a parser's error
is :func:`flt3d.datasets._messages._one_line`.
"""

from __future__ import annotations

from types import ModuleType

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
