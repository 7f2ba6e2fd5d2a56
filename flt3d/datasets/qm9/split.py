r"""The standard random train / validation / test split of QM9 (110,000 / 10,000 / the rest).

:func:`standard_split` scales the split down for smaller sets, such as the shipped sample.
"""

from __future__ import annotations

import torch
from torch import Tensor

from flt3d.nn.checks import check_int

from .source import QM9_SIZE

__all__ = ["standard_split"]


def standard_split(
    num: int,
    *,
    seed: int = 0,
    train: int = 110_000,
    val: int = 10_000,
    reference: int | None = QM9_SIZE,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""The standard random train / validation / test split of QM9.

    A random permutation of ``range(num)`` from ``torch.randperm`` with a
    ``torch.Generator`` seeded by ``seed`` is cut into ``train``, ``val`` and the rest. On the
    full set that is 110,000 / 10,000 / 10,831 molecules, the split most QM9 papers use. The
    split is the same on every run for the same ``num`` and ``seed`` (the tests pin its first
    indices, so a PyTorch release that changed ``randperm`` would be noticed).

    Datasets smaller than ``reference`` (the 4,000-molecule sample, a filtered subset) are split
    in the same proportions: the sizes become ``train * num // reference`` and
    ``val * num // reference``, and the test set takes the rest (3,363 / 305 / 332 for the
    sample). Pass ``reference=None`` to use ``train`` and ``val`` as counts at any size.

    Args:
        num: number of molecules in the dataset.
        seed: seed of the permutation. Default ``0``.
        train: training molecules at the reference size. Default ``110_000``.
        val: validation molecules at the reference size. Default ``10_000``.
        reference: size at which ``train`` and ``val`` are counts; smaller datasets scale
            them down. Default :data:`QM9_SIZE`; ``None`` never scales.

    Returns:
        ``(train_idx, val_idx, test_idx)``: sorted, disjoint ``long`` tensors of positions in
        the dataset (not QM9 ``Index`` values) that together cover ``range(num)``.

    Raises:
        ValueError: if a size is negative, or the split leaves the training or test set empty.

    Example:
        >>> train_idx, val_idx, test_idx = standard_split(4000)
        >>> len(train_idx), len(val_idx), len(test_idx)
        (3363, 305, 332)
    """
    num = check_int(num, "num", minimum=0, index=True)
    seed = check_int(seed, "seed", minimum=0, index=True)
    train = check_int(train, "train", minimum=0, index=True)
    val = check_int(val, "val", minimum=0, index=True)
    if reference is not None:
        reference = check_int(reference, "reference", minimum=0, index=True)
        if reference == 0:
            raise ValueError("reference must be positive or None, got 0")
        if num < reference:
            train, val = train * num // reference, val * num // reference
    if train == 0 or train + val >= num:
        raise ValueError(
            f"cannot split {num} molecules into {train} training, {val} validation and "
            f"{num - train - val} test molecules: training and test sets must be non-empty"
        )
    generator = torch.Generator().manual_seed(seed)
    perm = torch.randperm(num, generator=generator)
    part = torch.full((num,), 2, dtype=torch.long)
    part[perm[:train]] = 0
    part[perm[train : train + val]] = 1
    return tuple(torch.nonzero(part == k).flatten() for k in range(3))
