r"""Point-cloud classification: a ModelNet-style folder of shapes, and its ``LightningModule``.

``flt3d train --config pointcloud`` runs the ``pointcloud`` task: :class:`PointCloudDataModule`
reads a folder in the ModelNet layout (:class:`flt3d.datasets.ModelNetFolder`, cached; the
shapes sample shipped with flt3d by default), holds out a stratified, seeded part of its
``train`` folders for validation and tests on its ``test`` folders;
:class:`PointCloudClassification` trains :class:`~flt3d.models.PointCloudClassifier` with the
cross-entropy and reports accuracy. The class names travel in the model's configuration, so a
checkpoint names what it predicts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data

from flt3d.datasets.digits import stratified_split
from flt3d.datasets.pointclouds import ModelNetFolder, shape_augmentation, shapes_sample_root
from flt3d.nn.checks import check_bool, check_int, check_number
from flt3d.training.classification import ClassificationModule
from flt3d.training.datamodule import SplitDataModule

__all__ = ["FEATURES", "PointCloudClassification", "PointCloudDataModule"]

FEATURES = {0: None, 3: "normal"}
"""What the task feeds the model for each ``model.in_channels``: nothing, or the normals."""


def _modelnet_layout(folder: str) -> bool:
    """Whether ``folder`` holds class folders with a ``train`` or ``test`` folder."""
    folder = os.path.expanduser(str(folder))
    if not os.path.isdir(folder):
        return False
    with os.scandir(folder) as entries:
        return any(
            e.is_dir() and not e.name.startswith((".", "_"))
            and any(os.path.isdir(os.path.join(e.path, split)) for split in ("train", "test"))
            for e in entries
        )  # fmt: skip


class PointCloudDataModule(SplitDataModule):
    """Shapes of a folder in the ModelNet10/40 layout, ``path/<class>/{train,test}/*.off``.

    Validation is a stratified share of each class's ``train`` shapes
    (:func:`~flt3d.datasets.digits.stratified_split`, seeded); test is the ``test`` folders.
    Every shape is ``num_points`` points sampled on its surface, with normals, in the unit
    sphere (see :class:`~flt3d.datasets.ModelNetFolder`).

    Args:
        path: the dataset folder (default ``None``: the ten classes of synthetic shapes shipped
            with flt3d, 40 training and 10 test shapes each, ``datasets/shapes.md``).
        root: folder of the processed cache (default ``$FLT3D_DATA/shapes``, or
            ``~/.cache/flt3d/shapes``). Without ``path``, a ``root`` in the ModelNet layout
            (class folders holding ``train`` or ``test``) is taken as the dataset folder, as
            PyG's ``ModelNet(root)`` reads its shapes from its root; the cache then goes to the
            default place.
        num_points: points per shape (default ``1024``).
        seed: seed of the point sampling (default ``0``).
        augment: apply :func:`~flt3d.datasets.shape_augmentation` (rotation about ``z``,
            scaling, jitter) to the training shapes (default ``True``); never to validation
            or test.
        val_fraction: share of each class's training shapes held out for validation
            (default ``0.1``).
        split_seed: seed of that split (default ``0``).
        batch_size: shapes per training batch (default ``16``).
        eval_batch_size: shapes per evaluation batch (default ``2 * batch_size``).
        num_workers: loader worker processes (default ``0``).

    Attributes:
        classes: the class names, sorted (after :meth:`setup`).
        train_dataset, val_dataset, test_dataset: the splits, after :meth:`setup`.
    """

    setting_names = (
        "path", "root", "num_points", "seed", "augment", "val_fraction", "split_seed",
        "batch_size", "eval_batch_size", "num_workers",
    )  # fmt: skip

    def __init__(
        self,
        path: str | None = None,
        *,
        root: str | None = None,
        num_points: int = 1024,
        seed: int = 0,
        augment: bool = True,
        val_fraction: float = 0.1,
        split_seed: int = 0,
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.num_points = check_int(num_points, "data.num_points")
        self.seed = check_int(seed, "data.seed", minimum=0)
        self.split_seed = check_int(split_seed, "data.split_seed", minimum=0)
        self.set_loader_options(batch_size, eval_batch_size, num_workers, eval_factor=2)
        self.augment = check_bool(augment, "data.augment")
        self.val_fraction = float(check_number(val_fraction, "data.val_fraction", low=0, high=1))
        if path is None and root is not None and _modelnet_layout(root):
            path, root = root, None
        self.path = None if path is None else os.path.abspath(os.path.expanduser(path))
        self.root = root
        self.classes: tuple[str, ...] | None = None
        self.train_dataset = self.val_dataset = self.test_dataset = None

    @property
    def folder(self) -> str:
        """The dataset folder read: :attr:`path`, or the unpacked shapes sample."""
        return shapes_sample_root() if self.path is None else self.path

    def _dataset(self, split: str) -> ModelNetFolder:
        return ModelNetFolder(
            self.folder, self.root, split=split, num_points=self.num_points, seed=self.seed
        )

    def prepare_data(self) -> None:
        self._dataset("train")
        self._dataset("test")

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is not None:
            return
        train, test = self._dataset("train"), self._dataset("test")
        parts = stratified_split(
            train.y, val_fraction=self.val_fraction, test_fraction=0.0, seed=self.split_seed
        )
        if not len(parts["val"]):
            raise ValueError(
                f"data.val_fraction={self.val_fraction} of the {len(train)} training shapes of "
                f"{train.path!r} leaves no validation shapes; raise data.val_fraction"
            )
        self.classes = train.classes
        self.train_dataset = train[parts["train"]]
        if self.augment:  # the subset is a copy: validation keeps no transform
            self.train_dataset.transform = shape_augmentation()
        self.val_dataset = train[parts["val"]]
        self.test_dataset = test

    def model_options(self) -> dict[str, Any]:
        """Model options the data decides: the number of classes and their names."""
        self.setup()
        return {"num_classes": len(self.classes), "classes": list(self.classes)}


class PointCloudClassification(ClassificationModule):
    """Shape classification with :class:`~flt3d.models.PointCloudClassifier`.

    The model reads the normals of the points (``model.in_channels=3``) or nothing (``0``).
    Logged metrics: ``{stage}/loss`` (cross-entropy) and ``{stage}/acc`` (accuracy in
    [0, 1]).

    Args:
        model: :class:`~flt3d.models.PointCloudClassifier` keyword arguments.
        label_smoothing: of the cross-entropy (default ``0.0``).
        optim: the ``optim`` section (see :func:`flt3d.training.optim.configure_optimizers`).
    """

    task = "pointcloud"

    def build_model(self, config: dict[str, Any]) -> nn.Module:
        in_channels = config.get("in_channels", 3)
        if in_channels not in FEATURES:
            raise ValueError(
                f"model.in_channels must be 3 (the points' normals) or 0 (no features) for "
                f"the pointcloud task, got {in_channels!r}"
            )
        return super().build_model(config)

    @property
    def classes(self) -> list[str]:
        """The class names, in label order (``class k`` where the model has none)."""
        names = self.model.classes
        return list(names) if names else [f"class {k}" for k in range(self.model.num_classes)]

    def check_clouds(self, clouds: Sequence[Data], sources: Sequence[str]) -> None:
        """Raise ``ValueError`` naming the source of the first cloud the model cannot read."""
        feature = FEATURES[self.model.in_channels]
        for cloud, source in zip(clouds, sources):
            if feature is not None and feature not in cloud:
                raise ValueError(
                    f"{source!r} has no normals, and the model reads them (in_channels=3); "
                    "give a mesh, or a point file with normals"
                )

    def check_data(self, datamodule: PointCloudDataModule, split: str) -> None:
        """Raise ``ValueError`` if the folder's classes are not the model's, or its shapes lack
        the normals the model reads."""
        datamodule.setup()
        names = self.model.classes
        if names is not None and list(datamodule.classes) != list(names):
            raise ValueError(
                f"{datamodule.folder!r} has the classes {list(datamodule.classes)}, but the "
                f"model was trained on {list(names)}"
            )
        if FEATURES[self.model.in_channels] is not None:
            dataset = datamodule.train_dataset if split == "all" else datamodule.split(split)
            if len(dataset) and "normal" not in dataset[0]:
                raise ValueError(
                    f"the shapes of {datamodule.folder!r} have no normals, and the model "
                    "reads them: set model.in_channels=0"
                )

    def forward(
        self,
        x: Tensor | None,
        pos: Tensor,
        batch: Tensor | None = None,
        num_graphs: int | None = None,
    ) -> Tensor:
        return self.model(x, pos, batch, num_graphs=num_graphs)

    def _logits(self, batch: Batch) -> Tensor:
        feature = FEATURES[self.model.in_channels]
        x = None if feature is None else batch[feature]
        return self(x, batch.pos, batch.batch, batch.num_graphs)

    def loss_and_metric(self, batch: Batch) -> tuple[Tensor, str, Tensor, int]:
        return self.classification_loss(self._logits(batch), batch.y.reshape(-1))

    @torch.no_grad()
    def predict_clouds(
        self,
        clouds: Sequence[Data],
        *,
        sources: Sequence[str] | None = None,
        batch_size: int = 32,
    ) -> Tensor:
        """Class probabilities of point clouds (``pos``, and ``normal`` when the model reads
        it), ``[len(clouds), num_classes]``.

        Raises:
            ValueError: naming the source (default ``"cloud k"``) of a cloud without the
                normals the model reads.
        """
        if sources is None:
            sources = [f"cloud {k}" for k in range(len(clouds))]
        self.check_clouds(clouds, sources)
        feature = FEATURES[self.model.in_channels]
        out = []
        with self.evaluating():
            for start in range(0, len(clouds), batch_size):
                chunk = [
                    Data(pos=c.pos, **({} if feature is None else {feature: c[feature]}))
                    for c in clouds[start : start + batch_size]
                ]
                batch = Batch.from_data_list(chunk).to(self.device)
                out.append(self._logits(batch).softmax(-1).cpu())
        return torch.cat(out) if out else torch.zeros(0, self.model.num_classes)
