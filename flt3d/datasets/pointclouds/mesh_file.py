"""One mesh or point file (OFF, PLY, OBJ, STL) parsed with ``trimesh`` and checked.

:data:`MESH_EXTENSIONS` are the formats read; ``_load`` returns a file's vertices, triangles
and (for a PLY point cloud) vertex normals, after checking an OFF file's header counts, finite
coordinates and faces that point at existing vertices, raising ``ValueError`` naming the file.
"""

from __future__ import annotations

import io
import os.path as osp
import re
from types import ModuleType
from typing import Any

import numpy as np

from .._messages import _one_line

MESH_EXTENSIONS: tuple[str, ...] = (".off", ".ply", ".obj", ".stl")
"""File extensions that :func:`read_point_cloud` and :class:`ModelNetFolder` read."""


def _check_off(path: str, raw: bytes) -> None:
    # trimesh reads as many faces as there are lines, so check the header's counts here.
    lines = [line.split(b"#", 1)[0].split() for line in raw.splitlines()]
    lines = [tokens for tokens in lines if tokens]
    match = re.fullmatch(rb"([A-Za-z]*OFF)(.*)", lines[0][0]) if lines else None
    if match is None:
        raise ValueError(f"{path!r} is not an OFF file: it does not start with 'OFF'")
    counts = ([match.group(2)] if match.group(2) else []) + lines[0][1:]
    body = lines[1:]
    if not counts and body:
        counts, body = body[0], body[1:]
    try:
        vertices, faces = int(counts[0]), int(counts[1])
    except (IndexError, ValueError):
        found = b" ".join(counts).decode(errors="replace")
        raise ValueError(
            f"{path!r}: malformed OFF counts line {found!r}; expected 'vertices faces edges'"
        ) from None
    if vertices < 0 or faces < 0:
        raise ValueError(f"{path!r}: negative OFF counts {vertices} vertices, {faces} faces")
    if len(body) < vertices + faces:
        raise ValueError(
            f"{path!r} is truncated: its header promises {vertices} vertices and {faces} faces, "
            f"but it has {len(body)} lines of them"
        )
    for number, tokens in enumerate(body[vertices : vertices + faces]):
        if not tokens[0].isdigit() or len(tokens) < 1 + int(tokens[0]):
            raise ValueError(
                f"{path!r}: face {number} is truncated or malformed "
                f"({b' '.join(tokens).decode(errors='replace')!r})"
            )


def _vertices(part: Any) -> np.ndarray:
    vertices = np.asarray(part.vertices, dtype=np.float64)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must be [V, 3], got {tuple(vertices.shape)}")
    return vertices


def _faces(trimesh: ModuleType, part: Any) -> np.ndarray:
    if not isinstance(part, trimesh.Trimesh):
        return np.empty((0, 3), dtype=np.int64)
    return np.asarray(part.faces, dtype=np.int64).reshape(-1, 3)


def _load(trimesh: ModuleType, path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    # The file's vertices [V, 3], its triangles [F, 3] (F = 0 for points) and its vertex
    # normals [V, 3] where a point file has them.
    extension = osp.splitext(path)[1].lower()
    if extension not in MESH_EXTENSIONS:
        raise ValueError(
            f"cannot read {path!r}: unknown extension {extension or '(none)'!r}; expected one "
            f"of {', '.join(MESH_EXTENSIONS)}"
        )
    if not osp.isfile(path):
        raise ValueError(f"cannot read {path!r}: no such file")
    with open(path, "rb") as file:
        raw = file.read()
    if not raw.strip():
        raise ValueError(f"{path!r} is empty; expected a mesh or points")
    if extension == ".off":
        _check_off(path, raw)
    file_type = extension[1:]
    try:
        geometry = trimesh.load(io.BytesIO(raw), file_type=file_type, process=False)
        parts = geometry.dump() if isinstance(geometry, trimesh.Scene) else [geometry]
        parts = [
            (_vertices(part), _faces(trimesh, part))
            for part in parts
            if isinstance(part, (trimesh.Trimesh, trimesh.PointCloud)) and len(part.vertices)
        ]
    except Exception as error:  # trimesh raises ValueError, IndexError, KeyError, struct.error...
        raise ValueError(
            f"{path!r}: cannot parse as {file_type.upper()} ({_one_line(error)})"
        ) from None
    if not parts:
        raise ValueError(
            f"{path!r}: holds no vertices (an empty or unreadable {file_type.upper()})"
        )
    meshes = [(vertices, faces) for vertices, faces in parts if len(faces)]
    if meshes:
        # Several meshes in one file (an OBJ with objects, an STL with solids): one surface.
        offsets = np.cumsum([0] + [len(vertices) for vertices, _ in meshes])
        vertices = np.concatenate([vertices for vertices, _ in meshes])
        faces = np.concatenate([faces + offset for (_, faces), offset in zip(meshes, offsets)])
    else:
        vertices = np.concatenate([vertices for vertices, _ in parts])
        faces = np.empty((0, 3), dtype=np.int64)

    bad = np.flatnonzero(~np.isfinite(vertices).all(axis=1))
    if bad.size:
        more = f" and {bad.size - 5} more" if bad.size > 5 else ""
        raise ValueError(f"{path!r}: NaN or infinite coordinates (vertex {bad[:5].tolist()}{more})")
    outside = (faces < 0) | (faces >= len(vertices))
    if outside.any():
        raise ValueError(
            f"{path!r}: a face refers to vertex {int(faces[outside][0])}, but there are "
            f"{len(vertices)} vertices"
        )

    normals = None
    if not len(faces) and extension == ".ply" and len(parts) == 1:
        loaded = trimesh.exchange.ply.load_ply(io.BytesIO(raw))
        normals = loaded.get("vertex_normals")
        if normals is not None:
            normals = np.asarray(normals, dtype=np.float64).reshape(-1, 3)
            length = np.linalg.norm(normals, axis=1)
            bad = np.flatnonzero(~(np.isfinite(length) & (length > 0)))
            if bad.size:
                raise ValueError(
                    f"{path!r}: NaN, infinite or zero normals (vertex {bad[:5].tolist()})"
                )
            normals = normals / length[:, None]
    return vertices, faces, normals
