"""Target statistics from a training set: :func:`fit_statistics` and the pick of a model's target
columns from a dataset's ``y``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from flt3d.atomistic import AtomwiseHead, HeadStatistics, make_head
from flt3d.datasets.qm9 import TARGETS, head_for_target, target_index

if TYPE_CHECKING:
    from flt3d.models.fltnet import FLTNet


def _targets(y: Tensor, num_graphs: int, target: str | int | None, out_channels: int) -> Tensor:
    y = y.reshape(num_graphs, -1)
    if y.shape[1] == out_channels:
        return y
    if target is not None and y.shape[1] == len(TARGETS):
        index = target_index(target)
        return y[:, index : index + 1]
    raise ValueError(
        f"cannot take {out_channels} target column(s) from y with {y.shape[1]} columns"
        + ("" if target is None else f" for target {target!r}")
    )


@torch.no_grad()
def fit_statistics(
    model_or_target: FLTNet | AtomwiseHead | str | int,
    data: Iterable,
    *,
    target: str | int | None = None,
) -> HeadStatistics:
    """Target statistics and per-element references from a training set.

    Extensive heads: least-squares per-element references and the mean and std of the
    per-atom residual; intensive heads: the targets' mean and std; ⟨R²⟩: fitted per-element
    weights; dipole: none (mean 0, std 1). See each head's ``fit_statistics``.

    Args:
        model_or_target: an :class:`FLTNet`, a head, or a QM9 target name / index (the head
            is then the one :func:`~flt3d.datasets.qm9.head_for_target` picks, with default
            options).
        data: a dataset (an iterable of PyG ``Data`` with ``z``, ``pos`` and ``y``) or a PyG
            ``DataLoader`` of batches. Pass only the training molecules.
        target: which column of a 12-column QM9 ``y`` to use (default: the model's target).

    Returns:
        :class:`~flt3d.atomistic.HeadStatistics`, float64; apply with
        ``model.set_statistics(*stats)``.

    Example:
        >>> from flt3d.datasets import QM9_SAMPLE_PATH, read_qm9_csv
        >>> stats = fit_statistics("U0", read_qm9_csv(QM9_SAMPLE_PATH, nrows=200))
        >>> round(float(stats.atomref[6, 0]) / 1000, 1)  # eV per carbon, about -1030
        -1.0
    """
    from flt3d.models.fltnet import FLTNet  # here: fltnet imports this module

    if isinstance(model_or_target, FLTNet):
        head = model_or_target.head
        target = model_or_target.target if target is None else target
    elif isinstance(model_or_target, AtomwiseHead):
        head = model_or_target
    else:
        target = model_or_target if target is None else target
        head = make_head(head_for_target(model_or_target), 1)
    ys, zs, poss, batches = [], [], [], []
    offset = 0
    for item in data:
        z = item.z.detach().cpu()
        num = int(item.num_graphs) if hasattr(item, "num_graphs") else 1
        batch = getattr(item, "batch", None)
        batch = torch.zeros_like(z) if batch is None else batch.detach().cpu()
        y = item.y.detach().cpu().to(torch.float64)
        ys.append(_targets(y, num, target, head.out_channels))
        zs.append(z)
        poss.append(item.pos.detach().cpu().to(torch.float64))
        batches.append(batch + offset)
        offset += num
    if offset == 0:
        raise ValueError("fit_statistics needs at least one molecule, got an empty data set")
    return head.fit_statistics(
        torch.cat(ys), torch.cat(zs), torch.cat(poss), torch.cat(batches), num_graphs=offset
    )
