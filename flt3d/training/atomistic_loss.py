r"""The loss of the atomistic tasks: errors standardised by the targets' spread about the baseline.

The baseline of a structure is the head's output when its per-atom network outputs zero: the
per-element references and the mean, :math:`s_i = \mu + a_{z_i}`, reduced per structure by the
head's own :meth:`~flt3d.atomistic.AtomwiseHead.reduce` (a sum for energies). The loss is taken
on the error divided by the spread :math:`\sigma` of the training targets about it,

.. math::
    \ell = \mathrm{mean}\,\big|(\hat y - y) / \sigma\big|^p, \qquad p = 1\ (\texttt{"l1"})
    \text{ or } 2\ (\texttt{"mse"}),

so that it starts near 1 for every target, and learning rates and gradient clipping carry over.
"""

from __future__ import annotations

import torch
from torch import Tensor

from flt3d.atomistic import AtomwiseHead

__all__ = ["LOSSES", "check_loss", "head_baseline", "scale_or_one", "spread", "standardised_loss"]

LOSSES = ("l1", "mse")
"""The losses of the standardised error: absolute or squared."""


def check_loss(loss: str) -> str:
    """``loss`` if it is one of :data:`LOSSES`, else a ``ValueError`` naming ``module.loss``."""
    if loss not in LOSSES:
        raise ValueError(f"module.loss must be one of {LOSSES}, got {loss!r}")
    return loss


def standardised_loss(error: Tensor, loss: str) -> Tensor:
    """The mean absolute (``"l1"``) or squared (``"mse"``) value of a standardised ``error``."""
    return error.abs().mean() if loss == "l1" else error.pow(2).mean()


@torch.no_grad()
def head_baseline(head: AtomwiseHead, batch) -> Tensor:
    r"""The head's output with a zero per-atom network, one value per structure.

    .. math::
        b_G = \mathrm{reduce}_{i \in G}\,(\mu + a_{z_i})

    Args:
        head: the model's head (fitted statistics and references).
        batch: a PyG ``Batch`` with ``z``, ``pos``, ``batch`` and ``num_graphs``.

    Shapes:
        - **output:** ``[G]``, in the head's dtype and on its device (first output channel).
    """
    batch = batch.to(head.mean.device)
    s = head.mean + head.atomref[batch.z]
    pos = batch.pos.to(s.dtype)
    return head.reduce(s, batch.z, pos, batch.batch, batch.num_graphs)[:, 0]


def scale_or_one(value: float) -> float:
    """``value`` where positive, else 1: a loss scale that never divides by zero."""
    return value if value > 0 else 1.0


def spread(values: Tensor) -> float:
    """The std of ``values`` as a loss scale: 1 where undefined (fewer than two) or zero.

    Example:
        >>> spread(torch.tensor([1.0, 3.0])), spread(torch.tensor([2.0]))
        (1.4142135381698608, 1.0)
    """
    return scale_or_one(values.std().item() if values.numel() > 1 else 1.0)
