"""The training augmentation of point clouds: :func:`shape_augmentation`.

A rotation about one axis (turning ``normal`` with ``pos``), a random scale and a jitter, as one
PyG transform.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch_geometric.transforms as T
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform


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
