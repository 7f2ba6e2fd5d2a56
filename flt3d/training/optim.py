r"""AdamW with a linear warm-up, then a cosine decay or ``ReduceLROnPlateau``.

``cosine`` (per optimiser step :math:`t`, warm-up :math:`w`, total :math:`T`, floor ratio
:math:`\rho`):

.. math::
    \eta_t = \eta \cdot \begin{cases}
        (t + 1) / w & t < w \\
        \rho + (1 - \rho)\,\tfrac12\big(1 + \cos(\pi\,\tfrac{t - w}{T - w})\big) & t \ge w
    \end{cases}

With ``anneal_to_max_time``, the cosine's progress is the larger of the step fraction and the
fraction of ``trainer.max_time`` used, :math:`\max\big(\tfrac{t - w}{T - w},
\tfrac{\text{elapsed}}{\text{max\_time}}\big)`: a run that a time budget stops early still ends
at the lowest rate. The rate then depends on the machine's speed, so runs are reproducible only
up to timing; leave it off where that matters.

``plateau``: the same warm-up (``LinearLR``, per step), then the rate is multiplied by
``plateau_factor`` whenever the monitored validation metric has not improved for
``plateau_patience`` epochs. ``constant``: the warm-up, then :math:`\eta`.

Weight decay applies to matrices and embeddings only (``param.dim() >= 2``), not to vectors
(biases, norm scales) nor to any parameter of a :class:`~flt3d.nn.spectrum.Spectrum` (the
spectral RPEs' and filters' widths, means and weights, whatever their shape): decay would pull
their logits toward zero, which is a length scale, not a small function.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from flt3d.nn.checks import check_bool, check_int

__all__ = ["SCHEDULES", "check_options", "configure_optimizers", "warmup_cosine"]

SCHEDULES = ("cosine", "plateau", "constant")


def warmup_cosine(
    step: int,
    *,
    warmup_steps: int,
    total_steps: int,
    min_ratio: float,
    time_fraction: float = 0.0,
) -> float:
    """Learning-rate factor of the ``cosine`` schedule at optimiser step ``step`` (0-based).

    Args:
        step: optimiser steps taken.
        warmup_steps: steps of linear warm-up.
        total_steps: planned steps of the run.
        min_ratio: final factor.
        time_fraction: share of the time budget used; after warm-up the cosine follows the
            larger of this and the step fraction (default ``0.0``: steps only).

    Example:
        >>> [round(warmup_cosine(t, warmup_steps=2, total_steps=6, min_ratio=0.0), 2)
        ...  for t in range(7)]
        [0.5, 1.0, 1.0, 0.85, 0.5, 0.15, 0.0]
        >>> warmup_cosine(2, warmup_steps=2, total_steps=6, min_ratio=0.0, time_fraction=0.5)
        0.5
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    progress = min(max((step - warmup_steps) / span, time_fraction), 1.0)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _parameter_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    from flt3d.nn.spectrum import Spectrum

    spectral = {
        id(param)
        for child in module.modules()
        if isinstance(child, Spectrum)
        for param in child.parameters()
    }
    decay, no_decay = [], []
    for param in module.parameters():
        if param.requires_grad:
            exempt = param.dim() < 2 or id(param) in spectral
            (no_decay if exempt else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def configure_optimizers(
    module: nn.Module,
    *,
    total_steps: int | None,
    monitor: str,
    monitor_mode: str = "min",
    lr: float = 5e-4,
    weight_decay: float = 0.0,
    betas: Sequence[float] = (0.9, 0.999),
    schedule: str = "cosine",
    warmup_steps: int = 0,
    min_lr_ratio: float = 0.0,
    plateau_factor: float = 0.5,
    plateau_patience: int = 5,
    anneal_to_max_time: bool = False,
    ema_decay: float | None = None,
    time_fraction: Callable[[], float] | None = None,
) -> dict[str, Any]:
    """The optimiser and schedulers, in the form ``LightningModule.configure_optimizers`` returns.

    The keyword arguments from ``lr`` on are the ``optim`` section of a run configuration.

    Args:
        module: the module whose parameters to optimise.
        total_steps: optimiser steps of the whole run (``trainer.estimated_stepping_batches``);
            needed by ``cosine``.
        monitor: metric watched by ``plateau`` (e.g. ``"val/mae"``).
        monitor_mode: ``"min"`` or ``"max"``, whether lower or higher ``monitor`` is better.
        lr: peak learning rate (default ``5e-4``).
        weight_decay: AdamW's decoupled weight decay, on matrices only (default ``0.0``).
        betas: AdamW's betas (default ``(0.9, 0.999)``).
        schedule: ``"cosine"``, ``"plateau"`` or ``"constant"`` (default ``"cosine"``).
        warmup_steps: optimiser steps of linear warm-up (default ``0``).
        min_lr_ratio: final rate of ``cosine`` over ``lr`` (default ``0.0``).
        plateau_factor: factor of ``plateau`` (default ``0.5``).
        plateau_patience: epochs without improvement before ``plateau`` decays (default ``5``).
        anneal_to_max_time: ``cosine`` also follows the share of ``trainer.max_time`` used
            (see the module docstring; default ``False``).
        ema_decay: decay of an exponential moving average of the weights, applied by the
            training run (:func:`flt3d.training.run.prepare_fit`) through Lightning's
            ``EMAWeightAveraging``; ignored here (default ``None``, no average).
        time_fraction: returns the share of the time budget used, read at every scheduler
            step when ``anneal_to_max_time`` is set (the ``LightningModule`` provides it).

    Returns:
        ``{"optimizer": AdamW, "lr_scheduler": ...}`` for Lightning.

    Raises:
        ValueError: naming the option that is out of range, or if ``cosine`` has no
            finite ``total_steps``.
    """
    del ema_decay  # used by the run, not by the optimiser
    check_bool(anneal_to_max_time, "optim.anneal_to_max_time")
    if schedule not in SCHEDULES:
        raise ValueError(f"optim.schedule must be one of {SCHEDULES}, got {schedule!r}")
    if not lr > 0:
        raise ValueError(f"optim.lr must be positive, got {lr}")
    if weight_decay < 0:
        raise ValueError(f"optim.weight_decay must be non-negative, got {weight_decay}")
    check_int(warmup_steps, "optim.warmup_steps", minimum=0)
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"optim.min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
    if len(betas) != 2:
        raise ValueError(f"optim.betas must be two numbers, got {betas!r}")
    optimizer = torch.optim.AdamW(
        _parameter_groups(module, weight_decay), lr=lr, betas=tuple(float(b) for b in betas)
    )
    if schedule == "plateau":
        if not 0.0 < plateau_factor < 1.0:
            raise ValueError(f"optim.plateau_factor must be in (0, 1), got {plateau_factor}")
        schedulers = []
        if warmup_steps > 1:
            warmup = torch.optim.lr_scheduler.LinearLR(
                optimizer, start_factor=1.0 / warmup_steps, total_iters=warmup_steps - 1
            )
            schedulers.append({"scheduler": warmup, "interval": "step", "name": "warmup"})
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=monitor_mode, factor=plateau_factor, patience=plateau_patience
        )
        schedulers.append(
            {"scheduler": plateau, "interval": "epoch", "monitor": monitor, "name": "plateau"}
        )
        return [optimizer], schedulers
    if schedule == "cosine":
        if total_steps is None or not math.isfinite(total_steps) or total_steps < 1:
            raise ValueError(
                "optim.schedule 'cosine' needs a finite run length: set trainer.max_epochs or "
                "trainer.max_steps, or use optim.schedule=plateau"
            )
        total = int(total_steps)
        clock = time_fraction if anneal_to_max_time and time_fraction is not None else None

        def factor(step: int) -> float:
            return warmup_cosine(
                step,
                warmup_steps=warmup_steps,
                total_steps=total,
                min_ratio=min_lr_ratio,
                time_fraction=0.0 if clock is None else clock(),
            )
    else:

        def factor(step: int) -> float:
            return min((step + 1) / warmup_steps, 1.0) if warmup_steps else 1.0

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {
        "optimizer": optimizer,
        "lr_scheduler": {"scheduler": scheduler, "interval": "step", "name": "lr"},
    }


def check_options(options: Mapping[str, Any]) -> None:
    """Check an ``optim`` section before training starts (the run length is checked later).

    Raises:
        ValueError: naming the option that is out of range.
        TypeError: for an option :func:`configure_optimizers` does not take.
    """
    configure_optimizers(nn.Linear(1, 1), total_steps=1, monitor="val/loss", **options)
