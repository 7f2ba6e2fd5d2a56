"""What the classification tasks share: the cross-entropy with label smoothing, and accuracy."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor

from flt3d.training.base import TaskModule

__all__ = ["ClassificationModule"]


class ClassificationModule(TaskModule):
    """Base of the classification ``LightningModule`` s: cross-entropy loss, accuracy metric.

    Subclasses set :attr:`task`, implement :meth:`build_model` and
    :meth:`~flt3d.training.base.TaskModule.loss_and_metric`, the latter through
    :meth:`classification_loss` on their logits.

    Logged metrics: ``{stage}/loss`` (cross-entropy) and ``{stage}/acc`` (accuracy in [0, 1]).

    Args:
        model: keyword arguments of the model.
        label_smoothing: of the cross-entropy (default ``0.0``).
        optim: the ``optim`` section (see :func:`flt3d.training.optim.configure_optimizers`).
    """

    monitor = "val/acc"
    monitor_mode = "max"

    def __init__(
        self,
        model: dict[str, Any],
        *,
        label_smoothing: float = 0.0,
        optim: dict[str, Any] | None = None,
    ) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"module.label_smoothing must be in [0, 1), got {label_smoothing}")
        super().__init__(model, optim=optim)
        self.save_hyperparameters()
        self.label_smoothing = float(label_smoothing)

    def module_options(self) -> dict[str, Any]:
        return {"label_smoothing": self.label_smoothing}

    def classification_loss(
        self, logits: Tensor, labels: Tensor
    ) -> tuple[Tensor, str, Tensor, int]:
        """``(cross-entropy, "acc", accuracy, batch size)`` of ``logits [B, C]`` against
        ``labels [B]``."""
        loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        acc = (logits.argmax(-1) == labels).float().mean()
        return loss, "acc", acc, labels.shape[0]

    def report(self, metrics: dict[str, float], split: str) -> list[str]:
        """``"{split} accuracy: {percent} %"``."""
        return [f"{split} accuracy: {100 * metrics['acc']:.2f} %"]
