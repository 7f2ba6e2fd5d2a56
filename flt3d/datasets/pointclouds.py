r"""Point clouds from mesh and point files, and a ModelNet-style folder of labelled shapes.

:func:`read_point_cloud` reads one OFF, PLY, OBJ or STL file with ``trimesh`` and returns a
``Data`` with

==========  ===================  ==============================================================
``pos``     ``float32 [P, 3]``   points, in the file's units (or in the unit sphere, see
                                 ``normalize``)
``normal``  ``float32 [P, 3]``   unit normals, where known (always for meshes)
``y``       ``long [1]``         the class label, when one is given
==========  ===================  ==============================================================

A mesh (a file with faces) gives ``P = num_points`` points drawn uniformly on its surface: a
face is chosen with probability proportional to its area, then a point uniformly inside it
(``trimesh.sample.sample_surface``). Each point's normal is the unit normal of its face, with
the sign the face's winding gives (outward on a consistently wound closed mesh). A file without
faces (a PLY point cloud, an OBJ of ``v`` lines, an OFF with no faces) gives its vertices: a
random subset of ``num_points`` of them in file order if it has more, all of them followed by
randomly repeated ones if it has fewer. Such a file has normals only when it is a PLY with
``nx, ny, nz`` vertex properties. Both ways draw from a ``numpy`` generator made from ``seed``
(no global random state), so the same file and seed give the same points.

:class:`ModelNetFolder` reads a folder in the layout of ModelNet10/40,
``root/<class>/{train,test}/<name>.off``, into a cached ``InMemoryDataset`` of point clouds
centred and scaled to the unit sphere, and :func:`shape_augmentation` is the usual training
augmentation for it. :data:`SHAPES_SAMPLE_PATH` is a small synthetic set of ten classes of
shapes shipped with flt3d (see ``datasets/shapes.md``); :func:`shapes_sample_root` unpacks it
into such a folder.

Nothing is dropped silently: a missing file, an unknown extension, a file that cannot be parsed
or is truncated, an empty mesh, faces of zero total area, NaN or infinite coordinates and faces
that point past the vertices raise ``ValueError`` naming the file. A truncated OFF or PLY file
is recognised by its header's counts; OBJ has no counts, so an OBJ cut between two lines reads
as a smaller mesh.

``trimesh`` comes with ``pip install 'flt3d[pointclouds]'`` and is imported only when a file is
read; it needs nothing but NumPy for these four formats.
"""

from __future__ import annotations

import hashlib
import io
import json
import operator
import os
import os.path as osp
import re
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import numpy as np
import torch
import torch_geometric.transforms as T
from torch_geometric.data import Data, InMemoryDataset
from torch_geometric.transforms import BaseTransform

from .cache import default_data_root

__all__ = [
    "MESH_EXTENSIONS",
    "SHAPES_SAMPLE_PATH",
    "ModelNetFolder",
    "read_point_cloud",
    "shape_augmentation",
    "shapes_sample_root",
]

MESH_EXTENSIONS: tuple[str, ...] = (".off", ".ply", ".obj", ".stl")
"""File extensions that :func:`read_point_cloud` and :class:`ModelNetFolder` read."""

SHAPES_SAMPLE_PATH = osp.join(osp.dirname(osp.abspath(__file__)), "data", "shapes_sample.tar.gz")
"""Ten classes of synthetic, randomly deformed shapes (40 training and 10 test meshes each) as
OFF files in the ModelNet layout, shipped with flt3d as one archive; see ``datasets/shapes.md``
and :func:`shapes_sample_root`."""

POINTCLOUDS_EXTRA = "pip install 'flt3d[pointclouds]'"

_SPLITS: tuple[str, ...] = ("train", "test")

# Bump when the layout of the processed Data changes, so that old caches are not loaded.
_CACHE_VERSION = 1


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
    num_points = _positive_int(num_points, "num_points")
    if not isinstance(seed, np.random.Generator):
        seed = _seed(seed)
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


def _visible(name: str) -> bool:
    return not name.startswith((".", "_"))


def _scan(path: str, split: str) -> tuple[tuple[str, ...], list[tuple[str, int]]]:
    # The class names and the split's (relative path, class index), in sorted order.
    if not osp.isdir(path):
        raise ValueError(f"cannot read {path!r}: no such folder")
    with os.scandir(path) as entries:
        classes = sorted(e.name for e in entries if e.is_dir() and _visible(e.name))
    if not classes:
        raise ValueError(
            f"{path!r} holds no class folders; expected the layout <class>/{{train,test}}/*.off"
        )
    files = []
    for label, name in enumerate(classes):
        for part in _SPLITS:
            if not osp.isdir(osp.join(path, name, part)):
                raise ValueError(
                    f"class folder {osp.join(path, name)!r} has no {part!r} folder; expected "
                    f"{name}/train and {name}/test, as in ModelNet"
                )
        folder = osp.join(path, name, split)
        with os.scandir(folder) as entries:
            names = sorted(e.name for e in entries if e.is_file() and _visible(e.name))
        if not names:
            raise ValueError(f"{folder!r} holds no mesh files; expected *.off")
        for file in names:
            if osp.splitext(file)[1].lower() not in MESH_EXTENSIONS:
                raise ValueError(
                    f"cannot read {osp.join(folder, file)!r}: unknown extension; expected one "
                    f"of {', '.join(MESH_EXTENSIONS)}"
                )
            files.append((f"{name}/{split}/{file}", label))
    return tuple(classes), files


class ModelNetFolder(InMemoryDataset):
    r"""Labelled shapes in the ModelNet10/40 layout, as cached point clouds in the unit sphere.

    The folder holds one sub-folder per class, each with ``train`` and ``test`` folders of mesh
    files (``.off`` as ModelNet ships them, or any of :data:`MESH_EXTENSIONS`)::

        path/bathtub/train/bathtub_0001.off
        path/bathtub/test/bathtub_0107.off
        path/bed/train/...

    Classes are the sorted names of the sub-folders (those not starting with ``.`` or ``_``);
    a shape's label is its class's position in :attr:`classes`. Each shape is read with
    :func:`read_point_cloud` (``num_points`` points, area-weighted on the surface, with
    normals) and centred and scaled to the unit sphere. The points of the file ``rel``
    (``"<class>/<split>/<name>"``) are drawn from ``numpy.random.default_rng([seed,
    crc32(rel)])``, so they do not depend on the other files or the order of processing.

    Each shape is a ``Data`` with ``pos`` (``float32 [P, 3]``), ``normal`` (``float32 [P, 3]``,
    present if every file has normals), ``y`` (``long [1]``, the label) and ``idx``
    (``long [1]``, its position in :attr:`files`), in the order of :attr:`files`: by class,
    then by file name.

    The processed split is saved in ``root/processed`` under a name made of the folder's name,
    the split and a hash of the folder's absolute path, of every file's name, size and
    modification time and of ``num_points`` and ``seed``, so that changing a file or a setting
    processes it again while the same request loads the cache. The cache is written to a
    temporary file and renamed, so an interrupted run leaves no partial cache.

    Augmentations are PyG transforms passed as ``transform`` and applied on access, e.g.
    :func:`shape_augmentation` for training.

    Args:
        path: the dataset folder, e.g. ``ModelNet10`` unzipped, or :func:`shapes_sample_root`.
        root: folder for the cache, not inside ``path``. Default: ``$FLT3D_DATA/shapes``, or
            ``~/.cache/flt3d/shapes`` without ``FLT3D_DATA``.
        split: ``"train"`` or ``"test"``. Default ``"train"``.
        num_points: points per shape. Default ``1024``.
        seed: seed of the sampling. Default ``0``.
        transform: applied to each ``Data`` on access. Default ``None``.
        log: print progress while processing. Default ``False``.
        force_reload: process again even if a cache exists. Default ``False``.

    Attributes:
        classes: the class names, sorted; ``y`` is a position in it.
        files: the split's files, relative to ``path`` (``"<class>/<split>/<name>"``), in
            dataset order; ``idx`` is a position in it.

    Raises:
        ImportError: naming the ``pointclouds`` extra if trimesh is missing (only when
            processing).
        ValueError: if ``path`` is not a folder or holds no class folders, a class folder lacks
            its ``train`` or ``test`` folder or the split's folder holds no mesh files, a file
            has an unknown extension, ``root`` lies in ``path``, or, when processing, as
            :func:`read_point_cloud`, naming the file.

    Example:
        >>> import tempfile
        >>> dataset = ModelNetFolder(shapes_sample_root(), tempfile.mkdtemp(), split="test")
        >>> len(dataset), dataset.num_classes, dataset[0].pos.shape
        (100, 10, torch.Size([1024, 3]))
    """

    def __init__(
        self,
        path: str | os.PathLike,
        root: str | os.PathLike | None = None,
        *,
        split: str = "train",
        num_points: int = 1024,
        seed: int = 0,
        transform: Callable[[Data], Data] | None = None,
        log: bool = False,
        force_reload: bool = False,
    ) -> None:
        if split not in _SPLITS:
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        self.path = osp.abspath(os.fspath(path))
        self.split = split
        self.num_points = _positive_int(num_points, "num_points")
        self.seed = _seed(seed)
        self.classes, files = _scan(self.path, split)
        self.files = tuple(rel for rel, _ in files)
        self._labels = [label for _, label in files]
        root = osp.join(default_data_root(), "shapes") if root is None else os.fspath(root)
        root = osp.abspath(osp.expanduser(root))
        if osp.commonpath([root, self.path]) == self.path:
            raise ValueError(f"root {root!r} lies in the dataset folder {self.path!r}; use another")
        stats = [os.stat(osp.join(self.path, rel)) for rel in self.files]
        key = [
            _CACHE_VERSION, self.path, split, self.num_points, self.seed,
            [[rel, s.st_size, s.st_mtime_ns] for rel, s in zip(self.files, stats)],
        ]  # fmt: skip
        self._digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]
        super().__init__(root, transform, log=log, force_reload=force_reload)
        self.load(self.processed_paths[0])

    @property
    def raw_dir(self) -> str:
        return self.path

    @property
    def raw_file_names(self) -> list[str]:
        return list(self.files)

    @property
    def processed_file_names(self) -> str:
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", osp.basename(self.path))
        return f"{stem}-{self.split}-{self._digest}.pt"

    def process(self) -> None:
        data_list = []
        for position, (rel, label) in enumerate(zip(self.files, self._labels)):
            rng = np.random.default_rng([self.seed, zlib.crc32(rel.encode())])
            data = read_point_cloud(
                osp.join(self.path, rel),
                num_points=self.num_points,
                seed=rng,
                normalize=True,
                y=label,
            )
            data.idx = torch.tensor([position], dtype=torch.long)
            data_list.append(data)
        with_normals = ["normal" in data for data in data_list]
        if any(with_normals) and not all(with_normals):
            rel = self.files[with_normals.index(False)]
            raise ValueError(
                f"{osp.join(self.path, rel)!r} has no normals, but "
                f"{self.files[with_normals.index(True)]!r} has them; expected normals for "
                "every shape or for none"
            )
        final = self.processed_paths[0]
        temporary = f"{final}.{os.getpid()}.tmp"
        try:
            self.save(data_list, temporary)
            os.replace(temporary, final)
        finally:
            if osp.exists(temporary):
                os.remove(temporary)

    @property
    def num_classes(self) -> int:
        """Number of classes of the folder (also those absent from a subset)."""
        return len(self.classes)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({len(self)}, {osp.basename(self.path)!r}, "
            f"split={self.split!r}, num_points={self.num_points})"
        )


class _RotateWithNormal(BaseTransform):
    # PyG's RandomRotate turns pos only; turn pos and normal by the same draw.
    def __init__(self, rotate: T.RandomRotate) -> None:
        self.rotate = rotate

    def forward(self, data: Data) -> Data:
        if "normal" not in data:
            return self.rotate(data)
        n = data.pos.size(0)
        turned = self.rotate(Data(pos=torch.cat([data.pos, data.normal]))).pos
        data.pos, data.normal = turned[:n], turned[n:]
        return data

    def __repr__(self) -> str:
        return f"{self.rotate} (pos and normal)"


def shape_augmentation(
    *,
    degrees: float = 180.0,
    axis: int = 2,
    jitter: float = 0.01,
    scales: Sequence[float] = (0.8, 1.25),
) -> T.Compose:
    r"""The standard training augmentation of point-cloud classifiers, as one PyG transform.

    ``Compose`` of PyG's ``RandomRotate(degrees, axis)`` (a rotation by an angle drawn
    uniformly from :math:`[-\mathrm{degrees}, \mathrm{degrees}]` about the axis, applied to
    ``normal`` as well when present), ``RandomScale(scales)`` (one factor drawn from
    ``scales`` for the whole cloud) and ``RandomJitter(jitter)`` (independent uniform noise in
    :math:`[-\mathrm{jitter}, \mathrm{jitter}]` on every coordinate of ``pos``). Pass it as
    ``transform=`` to :class:`ModelNetFolder` for the training split only. The draws come from
    Python's and torch's global generators, as in every PyG transform.

    Args:
        degrees: largest rotation angle, in degrees. Default ``180.0`` (any angle).
        axis: rotation axis, ``0``, ``1`` or ``2`` (``z``, the up axis of ModelNet). Default
            ``2``.
        jitter: half-width of the noise, in unit-sphere units. Default ``0.01``.
        scales: range of the scale factor. Default ``(0.8, 1.25)``.

    Returns:
        A ``torch_geometric.transforms.Compose``.

    Raises:
        ValueError: if ``axis`` is not 0, 1 or 2, ``degrees`` or ``jitter`` is negative, or
            ``scales`` is not two positive numbers in increasing order.
    """
    if isinstance(axis, bool) or axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis!r}")
    for name, value in (("degrees", degrees), ("jitter", jitter)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    scales = tuple(scales)
    if len(scales) != 2 or not 0 < scales[0] <= scales[1]:
        raise ValueError(f"scales must be (low, high) with 0 < low <= high, got {scales!r}")
    return T.Compose(
        [
            _RotateWithNormal(T.RandomRotate(degrees, axis=axis)),
            T.RandomScale(scales),
            T.RandomJitter(jitter),
        ]
    )


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def shapes_sample_root(root: str | os.PathLike | None = None) -> str:
    """The folder of the shipped shapes sample, unpacked from :data:`SHAPES_SAMPLE_PATH` once.

    The archive is unpacked into ``root/shapes_sample-<hash>/shapes``, with ``<hash>`` the
    first 12 hex digits of the archive's sha256, so an updated archive is unpacked afresh. It
    is unpacked into a temporary folder next to it and renamed, so a folder that exists is
    complete; two processes racing keep the first one's.

    Args:
        root: where to unpack. Default: ``$FLT3D_DATA``, or ``~/.cache/flt3d`` without
            ``FLT3D_DATA``.

    Returns:
        The path of a folder in the ModelNet layout (ten classes, 40 ``train`` and 10 ``test``
        OFF files each), ready for :class:`ModelNetFolder`.
    """
    parent = default_data_root() if root is None else os.fspath(root)
    parent = osp.abspath(osp.expanduser(parent))
    target = osp.join(parent, f"shapes_sample-{_sha256(SHAPES_SAMPLE_PATH)[:12]}")
    folder = osp.join(target, "shapes")
    if osp.isdir(folder):
        return folder
    os.makedirs(parent, exist_ok=True)
    temporary = tempfile.mkdtemp(prefix=".shapes_sample-", dir=parent)
    os.chmod(temporary, 0o755)  # mkdtemp makes it private; the unpacked sample is not
    try:
        with tarfile.open(SHAPES_SAMPLE_PATH, "r:gz") as archive:
            # The "data" filter (Python >= 3.10.12) refuses links and paths out of the folder.
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            archive.extractall(temporary, **safe)
        try:
            os.rename(temporary, target)
        except OSError:
            if not osp.isdir(folder):
                raise
    finally:
        if osp.isdir(temporary):
            shutil.rmtree(temporary)
    return folder
