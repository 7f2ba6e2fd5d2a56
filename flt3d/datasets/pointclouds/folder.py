"""The ModelNet-layout folder dataset: :class:`ModelNetFolder`, cached point clouds of shapes.

Scanning ``root/<class>/{train,test}/<name>.off`` into classes and files, and the cached
``InMemoryDataset`` of the point clouds :func:`~flt3d.datasets.read_point_cloud` draws from them.
"""

from __future__ import annotations

import hashlib
import json
import os
import os.path as osp
import re
import zlib
from collections.abc import Callable

import numpy as np
import torch
from torch_geometric.data import Data, InMemoryDataset

from flt3d.nn.checks import check_int

from ..cache import default_data_root
from .mesh_file import MESH_EXTENSIONS
from .reader import read_point_cloud

_SPLITS: tuple[str, ...] = ("train", "test")

# Bump when the layout of the processed Data changes, so that old caches are not loaded.
_CACHE_VERSION = 1


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
        >>> from flt3d.datasets import shapes_sample_root
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
        self.num_points = check_int(num_points, "num_points", index=True, got_index=False)
        self.seed = check_int(seed, "seed", minimum=0)
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
