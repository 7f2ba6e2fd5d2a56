"""Point clouds drawn from a mesh or point file: :func:`read_point_cloud`.

Surface sampling of meshes (area-weighted, with face normals), subsampling or padding of point
files, and the optional scaling to the unit sphere, all from a seeded ``numpy`` generator.
"""

from __future__ import annotations

import os
from types import ModuleType

import numpy as np
import torch
from torch_geometric.data import Data

from flt3d.nn.checks import check_int

from .checks import _import_trimesh
from .mesh_file import _load


def _sample_surface(
    trimesh: ModuleType,
    path: str,
    vertices: np.ndarray,
    faces: np.ndarray,
    num_points: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    area = float(mesh.area)
    if not (np.isfinite(area) and area > 0):
        raise ValueError(
            f"{path!r}: its {len(faces)} faces have a total area of {area}; expected a surface "
            "to sample"
        )
    points, face_index = trimesh.sample.sample_surface(mesh, num_points, seed=rng)
    corners = vertices[faces[face_index]]
    normal = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    return np.asarray(points), normal


def _subsample(num_vertices: int, num_points: int, rng: np.random.Generator) -> np.ndarray:
    if num_vertices >= num_points:
        return np.sort(rng.choice(num_vertices, num_points, replace=False))
    repeats = np.sort(rng.choice(num_vertices, num_points - num_vertices, replace=True))
    return np.concatenate([np.arange(num_vertices), repeats])


def _unit_sphere(pos: np.ndarray, path: str) -> np.ndarray:
    centred = pos - pos.mean(axis=0)
    radius = np.linalg.norm(centred, axis=1).max()
    if not radius > 0:
        raise ValueError(f"{path!r}: all its points coincide; cannot scale to the unit sphere")
    return centred / radius


def read_point_cloud(
    path: str | os.PathLike,
    *,
    num_points: int = 1024,
    seed: int | np.random.Generator = 0,
    normalize: bool = False,
    y: int | None = None,
) -> Data:
    r"""Read a mesh or point file (OFF, PLY, OBJ, STL) as a point cloud of ``num_points`` points.

    Meshes are sampled on their surface, area-weighted, with the normal of the face each point
    lies on; point files give their vertices, subsampled or padded (see the module docstring).
    With ``normalize``, the points are centred on their mean and scaled so that the farthest is
    at distance 1:

    .. math::
        \mathbf{p}_i \leftarrow \frac{\mathbf{p}_i - \bar{\mathbf{p}}}
        {\max_j \lVert \mathbf{p}_j - \bar{\mathbf{p}} \rVert}

    which leaves the normals unchanged.

    Args:
        path: the file; the format comes from its extension (case-insensitive), one of
            :data:`MESH_EXTENSIONS`.
        num_points: number of points :math:`P`. Default ``1024``.
        seed: seed of the ``numpy.random.Generator`` that draws the points, or a generator
            (which is advanced). Default ``0``.
        normalize: centre and scale to the unit sphere. Default ``False``: the file's units.
        y: class label, stored as ``y`` (``long [1]``). Default ``None``: no ``y``.

    Returns:
        ``Data`` with ``pos``, ``normal`` (where known), ``y`` (if given) and ``num_nodes``.

    Shapes:
        - **pos**: ``float32 [P, 3]``
        - **normal**: ``float32 [P, 3]``, unit length
        - **y**: ``long [1]``

    Raises:
        ImportError: naming the ``pointclouds`` extra if trimesh is missing.
        ValueError: naming the file if it does not exist, has an unknown extension, is empty,
            cannot be parsed or is truncated, holds no vertices, has NaN or infinite
            coordinates, faces past its vertices or faces of zero total area, or (with
            ``normalize``) all its points coincide.

    Example:
        >>> import tempfile, trimesh
        >>> path = tempfile.mkdtemp() + "/box.off"
        >>> _ = trimesh.creation.box().export(path)
        >>> data = read_point_cloud(path, num_points=256, seed=1)
        >>> data.pos.shape, data.normal.shape, bool(data.pos.abs().max() <= 0.5)
        (torch.Size([256, 3]), torch.Size([256, 3]), True)
    """
    path = os.fspath(path)
    num_points = check_int(num_points, "num_points", index=True, got_index=False)
    if not isinstance(seed, np.random.Generator):
        seed = check_int(seed, "seed", minimum=0)
    if not isinstance(normalize, bool):
        raise ValueError(f"normalize must be True or False, got {normalize!r}")
    if y is not None and (isinstance(y, bool) or not isinstance(y, int)):
        raise ValueError(f"y must be an integer class label or None, got {y!r}")
    trimesh = _import_trimesh()
    vertices, faces, normals = _load(trimesh, path)
    rng = np.random.default_rng(seed)
    if len(faces):
        pos, normal = _sample_surface(trimesh, path, vertices, faces, num_points, rng)
    else:
        index = _subsample(len(vertices), num_points, rng)
        pos, normal = vertices[index], None if normals is None else normals[index]
    if normalize:
        pos = _unit_sphere(pos, path)
    data = Data(pos=torch.from_numpy(pos.astype(np.float32)), num_nodes=num_points)
    if normal is not None:
        data.normal = torch.from_numpy(normal.astype(np.float32))
    if y is not None:
        data.y = torch.tensor([y], dtype=torch.long)
    return data
