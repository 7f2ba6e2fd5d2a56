"""Figures of a training run: learning curves from a metrics log, and predicted vs true.

:func:`learning_curve` reads a metrics table (Lightning's ``metrics.csv``, a DataFrame or a dict
of columns, through :func:`_read_metrics`); :func:`predicted_vs_true` scatters predictions
against targets.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence

import torch

from ._common import _new_axes

__all__ = ["learning_curve", "predicted_vs_true"]

_NOT_METRICS = {"epoch", "step", "time", "wall_time"}


def _read_metrics(source) -> dict[str, list[float]]:
    """Columns of a metrics table as lists of floats (NaN for empty cells)."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, newline="") as fh:
            rows = list(csv.DictReader(fh))
        columns = {name: [row[name] for row in rows] for name in (rows[0] if rows else {})}
    elif hasattr(source, "columns") and hasattr(source, "__getitem__"):  # a DataFrame
        columns = {str(c): list(source[c]) for c in source.columns}
    elif isinstance(source, Mapping):
        columns = {str(c): list(v) for c, v in source.items()}
    else:
        raise ValueError(
            f"expected a CSV path, a DataFrame or a dict of columns, got {type(source).__name__}"
        )

    def number(value) -> float:
        try:
            return float(value)
        except (TypeError, ValueError):
            return math.nan

    return {name: [number(v) for v in values] for name, values in columns.items()}


def learning_curve(
    metrics,
    *,
    keys: Sequence[str] | None = None,
    x: str | None = None,
    logy: bool | None = None,
    ax=None,
):
    """Metrics of a training run against step (or epoch), e.g. Lightning's ``metrics.csv``.

    Args:
        metrics: path of a CSV file (Lightning's ``CSVLogger`` writes ``metrics.csv``), a
            ``pandas.DataFrame`` or a dict of columns.
        keys: columns to draw (default every numeric column but ``epoch``, ``step``, learning
            rates (``lr*``) and ``test*`` metrics).
        x: column of the x axis (default ``"step"`` if present, else ``"epoch"``, else the row).
        logy: log y axis (default: when every drawn value is positive and they span more
            than a factor of ten).
        ax: axes to draw in (default a new figure).

    Returns:
        The figure, one line per key (labelled with the key), empty cells skipped.
    """
    columns = _read_metrics(metrics)
    if x is None:
        x = next((c for c in ("step", "epoch") if c in columns), None)
    if x is not None and x not in columns:
        raise ValueError(f"no column {x!r}; columns are {sorted(columns)}")
    if keys is None:
        keys = [
            c
            for c, vals in columns.items()
            if c not in _NOT_METRICS
            and c != x
            and not c.startswith(("lr", "test"))
            and any(math.isfinite(v) for v in vals)
        ]
    missing = [k for k in keys if k not in columns]
    if missing or not keys:
        raise ValueError(
            f"no metric columns {missing or ''} to draw; columns are {sorted(columns)}"
        )
    fig, (axis,) = _new_axes(ax, 1)
    n = len(next(iter(columns.values())))
    xs = columns[x] if x is not None else list(range(n))
    drawn = []
    for key in keys:
        pts = [(a, b) for a, b in zip(xs, columns[key]) if math.isfinite(a) and math.isfinite(b)]
        if not pts:
            continue
        axis.plot(*zip(*pts), marker="." if len(pts) < 30 else None, label=key)
        drawn.extend(b for _, b in pts)
    if logy is None:
        logy = bool(drawn) and min(drawn) > 0 and max(drawn) > 10 * min(drawn)
    if logy:
        axis.set_yscale("log")
    axis.set_xlabel(x or "row")
    axis.set_ylabel("value")
    axis.set_title("learning curve")
    axis.legend(fontsize="small")
    return fig


def predicted_vs_true(
    pred,
    true,
    *,
    unit: str | None = None,
    name: str | None = None,
    ax=None,
):
    """Scatter of predictions against targets, with the diagonal and the MAE in the title.

    Args:
        pred: predictions, any shape (flattened), tensor, array or list.
        true: targets, the same number of values.
        unit: unit for the axis labels and the MAE (default none).
        name: quantity name for the labels (default ``"value"``).
        ax: axes to draw in (default a new figure).

    Returns:
        The figure: one scatter collection and one diagonal line.
    """
    p = torch.as_tensor(pred, dtype=torch.float64).detach().cpu().flatten()
    t = torch.as_tensor(true, dtype=torch.float64).detach().cpu().flatten()
    if p.numel() != t.numel() or p.numel() == 0:
        raise ValueError(
            f"pred and true must hold the same, non-zero number of values, got "
            f"{p.numel()} and {t.numel()}"
        )
    fig, (axis,) = _new_axes(ax, 1)
    suffix = f" [{unit}]" if unit else ""
    name = name or "value"
    axis.scatter(t.numpy(), p.numpy(), s=10, alpha=0.6)
    lo, hi = float(torch.minimum(p.min(), t.min())), float(torch.maximum(p.max(), t.max()))
    axis.plot([lo, hi], [lo, hi], "--", color="0.4", lw=1.0)
    mae = float((p - t).abs().mean())
    axis.set_xlabel(f"true {name}{suffix}")
    axis.set_ylabel(f"predicted {name}{suffix}")
    axis.set_title(f"MAE = {mae:.4g}{' ' + unit if unit else ''} ({p.numel()} samples)")
    axis.set_aspect("equal", adjustable="datalim")
    return fig
