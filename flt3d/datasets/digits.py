r"""scikit-learn's 8x8 handwritten digits as image tensors, with a seeded stratified split.

The data are the 1,797 images of the test set of the UCI "Optical Recognition of Handwritten
Digits" collection, shipped inside scikit-learn (``sklearn.datasets.load_digits``, no download).
Each image is 8 x 8 cells holding the count (0..16) of set pixels in a 4 x 4 block of a 32 x 32
bitmap; here counts are divided by 16 so values lie in ``[0, 1]``.

Images are channels-first ``[N, 1, 8, 8]``, ready for :func:`flt3d.datasets.grid.flatten_image`
(64 tokens per image at unit spacing) or :class:`flt3d.nn.PatchEmbedding`.

Requires the ``grid`` extra: ``pip install flt3d[grid]``.
"""

from __future__ import annotations

import math
import operator

import torch
from torch import Tensor
from torch.utils.data import TensorDataset

__all__ = ["NUM_CLASSES", "load_digits", "load_digits_splits", "stratified_split"]

NUM_CLASSES = 10


def load_digits(*, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    r"""All 1,797 digit images and their labels, in scikit-learn's order.

    Args:
        dtype: floating dtype of the images (default ``torch.float32``).

    Returns:
        ``(images, labels)``.

    Shapes:
        - **images**: ``[1797, 1, 8, 8]``, values ``k / 16`` for integer ``k`` in ``0..16``
        - **labels**: ``[1797]``, long, in ``0..9``

    Raises:
        ImportError: when scikit-learn is missing (install ``flt3d[grid]``).
    """
    try:
        from sklearn.datasets import load_digits as _sklearn_load_digits
    except ImportError as err:
        raise ImportError(
            "the digits dataset needs scikit-learn; install it with: pip install 'flt3d[grid]'"
        ) from err
    bunch = _sklearn_load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float64).div_(16.0)
    images = images.unsqueeze(1).to(dtype)
    labels = torch.as_tensor(bunch.target, dtype=torch.long)
    return images, labels


def stratified_split(
    labels: Tensor,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> dict[str, Tensor]:
    r"""Seeded stratified train/val/test split of sample indices.

    For each class ``c`` with ``n_c`` samples, its indices are shuffled with a generator seeded
    by ``seed`` (one shared generator, classes in ascending order); the first
    ``round(test_fraction * n_c)`` go to test, the next ``round(val_fraction * n_c)`` to val,
    the rest to train. Every split thus keeps the class proportions of the whole set up to
    rounding, and the same ``(labels, seed)`` always gives the same split. Indices within a
    split are sorted.

    Args:
        labels: class of each sample ``[N]`` (integer).
        val_fraction: share of each class in val (default ``0.1``).
        test_fraction: share of each class in test (default ``0.2``).
        seed: seed of the shuffle (default ``0``).

    Returns:
        ``{"train": idx, "val": idx, "test": idx}``, disjoint long tensors covering ``0..N-1``.

    Example:
        >>> labels = torch.arange(10).repeat(10)
        >>> split = stratified_split(labels)
        >>> [len(split[k]) for k in ("train", "val", "test")]
        [70, 10, 20]
    """
    if labels.dim() != 1 or labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(
            f"labels must be a 1D integer tensor [N], got {labels.dtype} {tuple(labels.shape)}"
        )
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not math.isfinite(value) or not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must lie in [0, 1), got {value}")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"val_fraction + test_fraction must be < 1 to leave a training split, got "
            f"{val_fraction} + {test_fraction}"
        )
    generator = torch.Generator().manual_seed(operator.index(seed))
    labels = labels.cpu()
    parts: dict[str, list[Tensor]] = {"train": [], "val": [], "test": []}
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).squeeze(1)
        members = members[torch.randperm(members.numel(), generator=generator)]
        n_test = round(test_fraction * members.numel())
        n_val = round(val_fraction * members.numel())
        parts["test"].append(members[:n_test])
        parts["val"].append(members[n_test : n_test + n_val])
        parts["train"].append(members[n_test + n_val :])
    return {name: torch.cat(chunks).sort().values for name, chunks in parts.items()}


def load_digits_splits(
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> dict[str, TensorDataset]:
    r"""The digits as ``TensorDataset`` s of ``(image [1, 8, 8], label)``, split by
    :func:`stratified_split`.

    With the defaults (10 % val, 20 % test, seed 0) the sizes are 1,259 / 179 / 359
    (train / val / test).

    Args:
        val_fraction: share of each class in val (default ``0.1``).
        test_fraction: share of each class in test (default ``0.2``).
        seed: seed of the split (default ``0``).
        dtype: floating dtype of the images (default ``torch.float32``).

    Returns:
        ``{"train": ds, "val": ds, "test": ds}``.
    """
    images, labels = load_digits(dtype=dtype)
    split = stratified_split(
        labels, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed
    )
    return {name: TensorDataset(images[idx], labels[idx]) for name, idx in split.items()}
